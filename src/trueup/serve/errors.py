"""Every error as one JSON shape, `{"error": {"kind", "message", "field"?}}`, mapped in one place.

The library's `TrueupError` tree (and the ledger's errors under it) decides
the status: bad input 400, an unknown run, lot or transaction 404, a conflict
(a moved plan key, an undo conflict, a reused idempotency key, not enough
stock) 409, a refusal by a guard rail 422, an unreachable database 503.
Messages are the library's own, which never hold a password; anything else
is logged and answered with a bare 500, never a traceback.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException

from trueup.db import driver_message
from trueup.errors import (
    ConflictError,
    DatabaseError,
    NotFoundError,
    RefusedError,
    TrueupError,
)
from trueup.report.format import to_json

log = logging.getLogger(__name__)

# The first class an error is an instance of decides its status.
STATUS: tuple[tuple[type[TrueupError], int], ...] = (
    (NotFoundError, 404),
    (ConflictError, 409),
    (RefusedError, 422),
    (DatabaseError, 503),
    (TrueupError, 400),
)
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"description": description, "model": None}
    for status, description in (
        (400, "Bad input, naming the field; nothing was written"),
        (401, "No valid token"),
        (403, "The token's scope is too small"),
        (404, "Not found"),
        (409, "Conflict: data moved, an undo conflict, an idempotency conflict or not enough stock"),
        (422, "Refused by a guard rail"),
        (503, "The database is unreachable"),
    )
}


class ApiError(Exception):
    """An error the service itself raises (auth, limits), already with its status."""

    def __init__(self, status: int, kind: str, message: str, field: str | None = None):
        super().__init__(message)
        self.status, self.kind, self.message, self.field = status, kind, message, field


def status_of(error: TrueupError) -> int:
    return next(status for kind, status in STATUS if isinstance(error, kind))


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


def install(app: FastAPI) -> None:
    @app.exception_handler(TrueupError)
    async def trueup_error(request: Request, error: TrueupError) -> Response:
        return error_response(error)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
        return JSONResponse(body(error.kind, error.message, error.field), status_code=error.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0]
        where = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path", "header")]
        field = ".".join(where) or None
        message = f"{field}: {first.get('msg')}" if field else str(first.get("msg"))
        return JSONResponse(body("bad_request", message, field), status_code=400)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        kind = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http")
        return JSONResponse(body(kind, str(error.detail)), status_code=error.status_code)

    @app.exception_handler(DBAPIError)
    async def database_error(request: Request, error: DBAPIError) -> JSONResponse:
        log.warning("database error on %s %s: %s", request.method, request.url.path, driver_message(error))
        return JSONResponse(body("database", "the database did not answer; try again"), status_code=503)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse(body("internal", "internal error; the service log has the details"), status_code=500)
