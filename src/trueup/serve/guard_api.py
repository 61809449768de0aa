"""The guards over HTTP (read scope): what stands, and what alarm guards recorded at commit.

`GET /api/guard` is `trueup guard status --format json`; `GET /api/guard/violations`
is `trueup guard violations --format json`. Installing and removing stay on the CLI:
they change the schema.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from trueup import guard
from trueup.report.guard import guard_row
from trueup.serve.api import Reader, json_response
from trueup.serve.auth import service_of
from trueup.serve.errors import ERROR_RESPONSES

router = APIRouter(prefix="/api/guard", tags=["guard"], responses=ERROR_RESPONSES)  # type: ignore[arg-type]


@router.get("", summary="The installed guards: rule, mode, tables, run, and whether the rule changed since")
def status(request: Request, token: Reader) -> Response:
    service = service_of(request)
    with service.connection() as connection:
        rows = [guard_row(g, guard.changed_since(connection, service.config, g)) for g in guard.status(connection)]
    return json_response({"guards": rows})


@router.get("/violations", summary="What alarm guards found drifted at commit, newest first, and who committed it")
def violations(
    request: Request,
    token: Reader,
    rule: Annotated[str | None, Query(max_length=128, description="Only this rule's.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    with service_of(request).connection() as connection:
        found = guard.violations(connection, rule, limit)
    return json_response({"violations": found})
