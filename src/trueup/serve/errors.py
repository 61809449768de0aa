"""Every error as one JSON shape, `{"error": {"kind", "message", "field"?}}`, mapped in one place.

The library's `TrueupError` tree (and the ledger's errors under it) decides
the status: bad input 400, an unknown run, lot or transaction 404, a conflict
(a moved plan key, an undo conflict, a reused idempotency key, not enough
stock) 409, a refusal by a guard rail 422, an unreachable database 503 (a
statement the database refuses, such as a bad `where`, is bad input: 400).
Messages are the library's own, which never hold a password; anything else
is logged and answered with a bare 500, never a traceback.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException

from trueup.db import driver_message
from trueup.errors import (
    ConflictError,
    DatabaseError,
    NotFoundError,
    RefusedError,
    TrueupError,
    UnreachableError,
)
from trueup.report.format import to_json

log = logging.getLogger(__name__)

# The first class an error is an instance of decides its status. A `DatabaseError` that is not an
# outage is the database refusing a statement, nearly always the caller's own SQL (`where`, a query): 400.
STATUS: tuple[tuple[type[TrueupError], int], ...] = (
    (NotFoundError, 404),
    (ConflictError, 409),
    (RefusedError, 422),
    (UnreachableError, 503),
    (TrueupError, 400),
)


class ErrorDetail(BaseModel):
    kind: str
    message: str
    field: str | None = None


class ErrorBody(BaseModel):
    """Every error's shape (a refused apply adds its result's fields beside `error`)."""

    model_config = ConfigDict(extra="allow")
    error: ErrorDetail


MEANING = {
    400: "Bad input (a body, path or query parameter), naming the field; nothing was written",
    401: "No valid token",
    403: "The token's scope is too small",
    404: "Not found",
    409: "Conflict: data moved, an undo conflict, an idempotency conflict or not enough stock",
    413: "The request body is over the size limit",
    422: "Refused by a guard rail, or a production database without confirm",
    503: "The database is unreachable",
}
TOKEN = (401, 403, 503)  # every call with a token: the token is looked up in the database
BODY = (413,)  # every call with a body


def failures(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The error answers an endpoint gives, each in the one JSON shape (whatever its success is), for OpenAPI.

    Every endpoint can answer 400: an unknown query parameter is bad input (`api.known_query`)."""
    shape = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    return {status: {"description": MEANING[status], "content": shape} for status in sorted({400, *statuses})}


def published(document: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI document with the error shape `failures` refers to, and without FastAPI's own 422
    "Validation Error" entries: those answers are 400s here."""
    for operation in (op for path in document.get("paths", {}).values() for op in path.values()):
        answer = operation.get("responses", {}).get("422", {})
        if answer.get("description") == "Validation Error":
            del operation["responses"]["422"]
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    shape = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(shape.pop("$defs"), ErrorBody=shape)
    return document


def allowed_methods(request: Request) -> str:
    """Every method the OpenAPI document lists for this path (Starlette's 405 names only the first route's)."""
    path = request.url.path
    methods = {
        method.upper()
        for template, operations in request.app.openapi()["paths"].items()
        if re.fullmatch(re.sub(r"\{[^/}]+\}", "[^/]+", template), path)
        for method in operations
    }
    return ", ".join(sorted(methods))


class ApiError(Exception):
    """An error the service itself raises (auth, limits), already with its status."""

    def __init__(self, status: int, kind: str, message: str, field: str | None = None):
        super().__init__(message)
        self.status, self.kind, self.message, self.field = status, kind, message, field


def status_of(error: TrueupError) -> int:
    if isinstance(error, DatabaseError) and _connection_lost(error):
        return 503
    return next(status for kind, status in STATUS if isinstance(error, kind))


def _connection_lost(error: DatabaseError) -> bool:
    """The library wraps driver errors `from None`; the driver's error is still its context."""
    cause = error.__context__
    return isinstance(cause, DBAPIError) and bool(cause.connection_invalidated)


def kind_of(error: TrueupError) -> str:
    """`InsufficientStock` -> `insufficient_stock`, `UsageError` -> `usage`."""
    name = type(error).__name__.removesuffix("Error") or "trueup"
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def body(kind: str, message: str, field: str | None = None, **more: Any) -> dict[str, Any]:
    error: dict[str, Any] = {"kind": kind, "message": message}
    if field:
        error["field"] = field
    return {"error": error, **more}


def error_response(error: TrueupError, **more: Any) -> Response:
    document = body(kind_of(error), str(error), getattr(error, "field", None), **more)
    return Response(to_json(document), status_code=status_of(error), media_type="application/json")


@contextmanager
def about(field: str) -> Iterator[None]:
    """Errors raised inside are about request field `field` (unless they already name one)."""
    try:
        yield
    except TrueupError as error:
        if getattr(error, "field", None) is None:
            error.field = field  # type: ignore[attr-defined]
        raise


def answer(
    request: Request,
    status: int,
    kind: str,
    message: str,
    field: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """The error as JSON for the API, or as a page for a person at the dashboard; `headers` go with either."""
    page = getattr(request.app.state, "error_page", None)
    if page is not None and not request.url.path.startswith(("/api/", "/metrics")):
        shown = page(request, status, kind, message)
        shown.headers.update(headers or {})
        return shown
    headers = {"WWW-Authenticate": "Bearer", **(headers or {})} if status == 401 else headers
    return Response(to_json(body(kind, message, field)), status, headers, media_type="application/json")


def install(app: FastAPI) -> None:
    @app.exception_handler(TrueupError)
    async def trueup_error(request: Request, error: TrueupError) -> Response:
        status = status_of(error)
        if status == 503:  # where the database lives is for the log, not for whoever asked
            log.warning("database unreachable on %s %s: %s", request.method, request.url.path, error)
            return answer(request, 503, "unreachable", "the database is not answering; the service log says why")
        return answer(request, status, kind_of(error), str(error), getattr(error, "field", None))

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError) -> Response:
        return answer(request, error.status, error.kind, error.message, error.field)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> Response:
        first = error.errors()[0]
        where = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path", "header")]
        field = ".".join(where) or None
        message = f"{field}: {first.get('msg')}" if field else str(first.get("msg"))
        return answer(request, 400, "bad_request", message, field)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> Response:
        kind = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http")
        headers = error.headers
        if error.status_code == 405 and (methods := allowed_methods(request)):
            headers = {**(headers or {}), "Allow": methods}
        return answer(request, error.status_code, kind, str(error.detail), headers=headers)

    @app.exception_handler(DBAPIError)
    async def database_error(request: Request, error: DBAPIError) -> Response:
        log.warning("database error on %s %s: %s", request.method, request.url.path, driver_message(error))
        return answer(request, 503, "database", "the database did not answer; try again")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return answer(request, 500, "internal", "internal error; the service log has the details")
