"""The guards over HTTP (read scope): what stands, and what alarm guards recorded at commit.

`GET /api/guard` is `trueup guard status --format json`; `GET /api/guard/violations`
is `trueup guard violations --format json`. Installing and removing stay on the CLI:
they change the schema.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from trueup import guard
from trueup.guard.violations import ViolationEntry
from trueup.report.guard import GuardEntry, guard_row
from trueup.schema import Document
from trueup.serve.api import Reader, json_response, known_query
from trueup.serve.auth import service_of
from trueup.serve.errors import TOKEN, failures

router = APIRouter(prefix="/api/guard", tags=["guard"], dependencies=[Depends(known_query)])


class GuardsDocument(Document):
    """What `trueup guard status --format json` prints."""

    guards: list[GuardEntry]


class ViolationsDocument(Document):
    """What `trueup guard violations --format json` prints."""

    violations: list[ViolationEntry]


@router.get(
    "",
    summary="The installed guards: rule, mode, tables, run, and whether the rule changed since",
    response_model=GuardsDocument,
    responses=failures(*TOKEN),
)
def status(request: Request, token: Reader) -> Response:
    service = service_of(request)
    with service.connection() as connection:
        rows = [guard_row(g, guard.changed_since(connection, service.config, g)) for g in guard.status(connection)]
    return json_response({"guards": rows})


@router.get(
    "/violations",
    summary="What alarm guards found drifted at commit, newest first, and who committed it",
    response_model=ViolationsDocument,
    responses=failures(*TOKEN),
)
def violations(
    request: Request,
    token: Reader,
    rule: Annotated[str | None, Query(max_length=128, description="Only this rule's.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    with service_of(request).connection() as connection:
        found = guard.violations(connection, rule, limit)
    return json_response({"violations": found})
