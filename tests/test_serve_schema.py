"""The service against its own OpenAPI document: every answer matches the schema, and every endpoint is walked.

Two tests. Schemathesis generates requests for every operation and runs all
its checks on each answer (no 5xx, a documented status, a body that matches
that status's schema, a documented content type, auth enforced). Generated
requests are mostly refused (an unknown run, lot or rule), so a second test
walks every operation once with a request that succeeds, on each database,
and validates each answer against the schema: the only way a 200 body is
checked for every endpoint. The walk lists every operation the document
has, so a new endpoint without a step fails it.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from tests.databases import Database, make_database
from tests.serve_helpers import app_for, batches_shop, client

_folder = Path(tempfile.mkdtemp(prefix="trueup-schema-"))
_db, _drop = make_database("sqlite", _folder)
SHOP = batches_shop(_db, _folder)
APP = app_for(SHOP)
# Well-formed input that means nothing here (an unknown rule, an empty item, a lot that does not exist) is
# bad input by contract: 400 naming the field. A refusal by a guard rail is 422.
ACCEPTED = ["2xx", "400", "401", "403", "404", "409", "422"]
CONFIG = schemathesis.config.SchemathesisConfig.from_dict(
    {"checks": {"positive_data_acceptance": {"expected-statuses": ACCEPTED}}}
)
schema = schemathesis.openapi.from_asgi("/api/openapi.json", APP, config=CONFIG)
EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "cost"


@schema.parametrize()
@settings(
    max_examples=int(os.environ.get("TRUEUP_SCHEMA_EXAMPLES", "15")),
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_never_fails_and_matches_its_schema(case) -> None:  # type: ignore[no-untyped-def]
    case.call_and_validate(headers=SHOP.auth("admin"))  # every check schemathesis has


class Step(NamedTuple):
    method: str
    path: str  # the operation's path template; {fields} are filled from what earlier steps answered
    request: dict[str, Any]
    status: int = 200


RECEIVE = {"item": "pipe", "location": "shop", "qty": "10", "unit_cost": "0.40", "lot": "ROLL-1"}
SALE = {"item": "pipe", "location": "shop", "qty": "1"}
WALK = (
    Step("GET", "/api/health", {}),
    Step("GET", "/api/rules", {}),
    Step("POST", "/api/check", {"json": {}}),
    Step("POST", "/api/plan", {"json": {"rules": ["batches"]}}),
    Step("POST", "/api/sync", {"json": {"rule": "batches", "keys": [["B-2"], ["C-3"]]}}),
    Step("POST", "/api/apply", {"json": {"chunk_size": 1}}),
    Step("GET", "/api/runs", {}),
    Step("GET", "/api/runs/{run_id}", {"params": {"limit": 1}}),
    # An unfinished run needs a killed apply (tests/test_chunked_apply.py); a finished one is refused, and
    # the 200 answer is the ApplyDocument the apply step validated.
    Step("POST", "/api/runs/{run_id}/resume", {"json": {}}, 422),
    Step("POST", "/api/runs/{run_id}/undo", {"json": {}}),
    Step("GET", "/api/history", {"params": {"rule": "batches"}}),
    Step("GET", "/api/rounds", {}),
    Step("GET", "/api/backups", {}),
    Step("POST", "/api/backups/{name}/restore", {"json": {"confirm": True}}),
    Step("POST", "/api/tokens", {"json": {"name": "walker", "scope": "read"}}, 201),
    Step("GET", "/api/tokens", {}),
    Step("DELETE", "/api/tokens/{name}", {}),
    Step("POST", "/api/ledger/receive", {"json": RECEIVE, "headers": {"Idempotency-Key": "po-1"}}),
    Step(
        "POST",
        "/api/ledger/transfer",
        {"json": {"item": "pipe", "from_location": "shop", "to_location": "van", "qty": "1"}},
    ),
    Step("POST", "/api/ledger/issue", {"json": SALE}),
    Step("POST", "/api/ledger/adjust", {"json": {"item": "pipe", "location": "shop", "counted": "7"}}),
    Step("POST", "/api/ledger/split", {"json": {"lot": "ROLL-1", "pieces": ["2", "1"], "location": "shop"}}),
    Step("POST", "/api/ledger/merge", {"json": {"lots": "{pieces}", "bundle_size": "1", "bundles": 3}}),
    Step("POST", "/api/ledger/transactions/{transaction_id}/revert", {"json": {}}),
    Step("GET", "/api/ledger/transactions/{transaction_id}", {}),
    Step("POST", "/api/ledger/reservations", {"json": {**SALE, "hold_for": "order-1"}}),
    Step("GET", "/api/ledger/reservations/{reservation_id}", {}),
    Step("POST", "/api/ledger/reservations/{reservation_id}/commit", {"json": {}}),
    Step("POST", "/api/ledger/reservations", {"json": {**SALE, "hold_for": "order-2"}}),
    Step("POST", "/api/ledger/reservations/{reservation_id}/release", {}),
    Step("GET", "/api/ledger/balance", {"params": {"item": "pipe", "location": "shop"}}),
    Step("GET", "/api/ledger/available", {"params": {"item": "pipe", "location": "shop"}}),
    Step("GET", "/api/ledger/positions", {"params": {"item": "pipe"}}),
    Step("GET", "/api/ledger/lots/{lot}/history", {"params": {"item": "pipe"}}),
    Step("GET", "/api/ledger/valuation", {}),
    Step("POST", "/api/cost", {"files": "{exports}", "data": {"write": "true"}}),
    Step("GET", "/api/cost/{run_id}/{name}", {"output": "summary.json"}),
    Step("GET", "/api/cost/{run_id}/{name}", {"output": "quarantine.csv"}),
    Step("GET", "/api/guard", {}),
    Step("GET", "/api/guard/violations", {"params": {"rule": "batches"}}),
    Step("GET", "/metrics", {}),
)


def test_every_operation_is_walked() -> None:
    documented = {(method.upper(), path) for path, ops in APP.openapi()["paths"].items() for method in ops}
    assert {(s.method, s.path) for s in WALK} == documented


def test_a_successful_call_of_every_endpoint_matches_its_schema(db: Database, tmp_path: Path) -> None:
    if db.kind != "sqlite" and not shutil.which("pg_dump" if db.kind == "postgresql" else "mysqldump"):
        pytest.skip("restore needs pg_dump or mysqldump")
    shop = batches_shop(db, tmp_path, extra=f'[serve]\nbackup_dir = "{tmp_path / "backups"}"\n')
    seen: dict[str, Any] = {"lot": "ROLL-1"}
    with client(shop) as api:
        for step in WALK:
            request = filled(step.request, seen)
            path = step.path.format(**{**seen, **output(step)})
            headers = {**shop.auth("admin"), **request.pop("headers", {})}
            answer = api.request(step.method, path, headers=headers, **request)
            assert answer.status_code == step.status, (step, answer.text)
            schema[step.path][step.method].validate_response(answer)
            remember(step, answer, seen)


def filled(request: dict[str, Any], seen: dict[str, Any]) -> dict[str, Any]:
    """The step's request with the placeholders `"{pieces}"` and `"{exports}"` replaced."""
    request = {k: v for k, v in request.items() if k != "output"}
    if request.get("files") == "{exports}":
        request["files"] = {
            role: (f"{role}.csv", (EXAMPLES / f"{role}.csv").read_bytes(), "text/csv") for role in ("sales", "lots")
        }
    if request.get("json", {}).get("lots") == "{pieces}":
        request["json"] = {**request["json"], "lots": seen["pieces"]}
    return request


def output(step: Step) -> dict[str, Any]:
    """For a download: the file name, in the cost run the cost step answered."""
    return {"name": step.request["output"]} if "output" in step.request else {}


def remember(step: Step, answer: Any, seen: dict[str, Any]) -> None:
    """The ids later steps' paths need, from what this one answered."""
    document = answer.json() if answer.headers["content-type"].startswith("application/json") else None
    if step.path == "/api/apply":
        seen["run_id"] = document["run_id"]
    elif step.path == "/api/backups":
        seen["name"] = document["backups"][0]["file"]
    elif step.path == "/api/tokens" and step.method == "POST":
        seen["name"] = document["name"]
    elif step.path == "/api/ledger/split":
        seen["pieces"] = document["lots"]
    elif step.path == "/api/ledger/issue":
        seen["transaction_id"] = document["id"]
    elif step.path == "/api/ledger/reservations":
        seen["reservation_id"] = document["id"]
    elif step.path == "/api/cost":
        seen["run_id"] = re.fullmatch(r"/api/cost/(\w+)/.*", document["files"]["cogs.csv"])[1]  # type: ignore[index]
