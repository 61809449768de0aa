"""Schemathesis against the service's own OpenAPI document: no 5xx, and every answer matches the schema."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance, status_code_conformance

from tests.databases import make_database
from tests.serve_helpers import app_for, batches_shop

_folder = Path(tempfile.mkdtemp(prefix="trueup-schema-"))
_db, _drop = make_database("sqlite", _folder)
SHOP = batches_shop(_db, _folder)
APP = app_for(SHOP)
schema = schemathesis.openapi.from_asgi("/api/openapi.json", APP)


@schema.parametrize()
@settings(
    max_examples=int(os.environ.get("TRUEUP_SCHEMA_EXAMPLES", "15")),
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_never_fails_and_matches_its_schema(case) -> None:  # type: ignore[no-untyped-def]
    case.headers = {**(case.headers or {}), **SHOP.auth("admin")}
    response = case.call()
    case.validate_response(response, checks=[not_a_server_error, status_code_conformance, response_schema_conformance])
