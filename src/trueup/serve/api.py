"""The JSON API: each endpoint parses its body, calls the library function its CLI command calls, renders.

Bodies are the documents `--format json` prints (`trueup.report.json`,
`trueup.report.repair`, `trueup.report.sync`), so one schema serves both.
Read-only calls need `read` (POST /api/check and /api/plan write nothing);
the sync hook `sync`; apply `write`; undo and tokens `admin`.
"""

from __future__ import annotations

import io
from datetime import datetime
from decimal import Decimal
from pathlib import Path as PathType
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr

from trueup import __version__
from trueup.config import Config, Rule, parse_duration
from trueup.errors import ConflictError, NotFoundError, RefusedError, UsageError
from trueup.reconcile import audit, history
from trueup.reconcile.apply import apply as apply_repair
from trueup.reconcile.apply import resume as resume_repair
from trueup.reconcile.audit import now
from trueup.reconcile.backup import list_backups, restore_backup
from trueup.reconcile.check import CheckRun, typed_key
from trueup.reconcile.guard import Limits, production_reason
from trueup.reconcile.plan import PlanDocument, make_plan, plan_document, read_plan
from trueup.reconcile.query import Scope
from trueup.reconcile.sync import SyncOptions, run_round
from trueup.reconcile.undo import undo_run
from trueup.report.format import to_json
from trueup.report.json import CheckDocument, write_check
from trueup.report.repair import (
    ApplyDocument,
    BackupEntry,
    RestoreDocument,
    RunDocument,
    RunsDocument,
    UndoDocument,
    apply_document,
    backup_dict,
    restore_document,
    run_document,
    runs_document,
    undo_document,
)
from trueup.report.sync import HistoryDocument, RoundDocument, history_document, round_document
from trueup.schema import Document, record
from trueup.serve import tokens
from trueup.serve.auth import bearer, service_of
from trueup.serve.errors import BODY, TOKEN, ApiError, about, error_response, failures
from trueup.serve.service import Service
from trueup.serve.tokens import CreatedDocument, Token, TokensDocument


def known_query(request: Request) -> None:
    """A query parameter the endpoint does not take, or one given twice, is bad input, not silently ignored."""
    route = request.scope.get("route")
    taken = {param.alias for param in getattr(getattr(route, "dependant", None), "query_params", ())}
    seen: set[str] = set()
    for name, _ in request.query_params.multi_items():
        if name not in taken or name in seen:
            why = "is given more than once" if name in seen else "is not a parameter of this endpoint"
            raise ApiError(400, "bad_request", f"query parameter {name!r} {why}", name)
        seen.add(name)


router = APIRouter(prefix="/api", dependencies=[Depends(known_query)])

Reader = Annotated[Token, Depends(bearer("read"))]
Syncer = Annotated[Token, Depends(bearer("sync"))]
Writer = Annotated[Token, Depends(bearer("write"))]
Admin = Annotated[Token, Depends(bearer("admin"))]
KeyValue = StrictInt | StrictStr  # JSON's true is not the key 1


def _text_only(value: Any) -> Any:
    """JSON's number is not a time: pydantic would read 0.25 as a quarter second after 1970."""
    if not isinstance(value, str):
        raise ValueError("a date and time as text (ISO 8601), e.g. 2026-12-01T09:30:00Z")
    return value


Timestamp = Annotated[datetime, BeforeValidator(_text_only)]
RowId = Annotated[int, Path(ge=1, le=2**63 - 1, description="An id (64-bit, as databases store them).")]
MAX_KEYS = 10_000


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CheckBody(Body):
    rules: list[str] | None = Field(None, description="Only these rules (and no custom checks); all when absent.")
    limit: StrictInt | None = Field(None, ge=0, description="List at most the worst N drifted keys per rule.")


class PlanBody(Body):
    rules: list[str] | None = None
    keys: list[list[KeyValue]] | None = Field(None, max_length=MAX_KEYS, description="Keys in recorded-key order.")
    where: str | None = Field(None, description="Only recorded rows matching this SQL condition.")
    limit: StrictInt | None = Field(None, ge=1, description="Only the worst N drifted keys per rule.")
    include_flagged: StrictBool = Field(
        False, description="Also correct keys with an error-severity finding (left out and listed by default)."
    )


class ApplyBody(PlanBody):
    plan: dict[str, Any] | None = Field(None, description="A plan document from POST /api/plan, applied as it is.")
    max_changes: StrictInt | None = Field(None, ge=0)
    max_abs_delta: Decimal | None = Field(None, ge=0)
    chunk_size: StrictInt | None = Field(
        None, ge=1, description="Write key-ordered chunks of N keys, each its own transaction (resumable)."
    )
    confirm: StrictBool = Field(False, description="Required on a database that looks like production.")


class ResumeBody(Body):
    confirm: StrictBool = Field(False, description="Required on a database that looks like production.")


class UndoBody(Body):
    skip_conflicts: StrictBool = False
    force: StrictBool = False
    confirm: StrictBool = False


class SyncBody(Body):
    rule: str
    keys: list[list[KeyValue]] = Field(min_length=1, max_length=MAX_KEYS)
    triggered_by: str = Field("hook", min_length=1, max_length=64)
    apply: StrictBool = False
    wait: StrictFloat = Field(0, ge=0, le=60, description="Seconds to wait for a round of the rule to end; then skip.")
    max_changes: StrictInt | None = Field(None, ge=0)
    max_abs_delta: Decimal | None = Field(None, ge=0)
    confirm: StrictBool = False


class RestoreBody(Body):
    confirm: StrictBool = Field(
        False, description="Restore always needs it: it discards every change since the backup."
    )


class TokenBody(Body):
    name: str = Field(min_length=1, max_length=128)
    scope: str = Field(pattern="^(read|sync|write|admin)$")


class Health(Document):
    status: str
    version: str


class RulesDocument(Document):
    """The configured rules, as the config file gives them."""

    rules: list[Rule]


class RoundsDocument(Document):
    rounds: list[record(history.Round, "RoundEntry")]  # type: ignore[misc]


class BackupsDocument(Document):
    backups: list[BackupEntry]  # type: ignore[valid-type]


class Revoked(Document):
    revoked: str


def json_response(document: Any, status: int = 200) -> Response:
    return Response(to_json(document), status_code=status, media_type="application/json")


@router.get(
    "/health",
    summary="Liveness and database reachability (no token needed)",
    response_model=Health,
    responses=failures(503),
)
def health(request: Request) -> Response:
    with service_of(request).connection() as connection:
        connection.exec_driver_sql("SELECT 1")
    return json_response(Health(status="ok", version=__version__))


@router.get("/rules", summary="The configured rules", response_model=RulesDocument, responses=failures(*TOKEN))
def rules(request: Request, token: Reader) -> Response:
    config = service_of(request).config
    return json_response({"rules": [r.model_dump(mode="json", by_alias=True, exclude_none=True) for r in config.rules]})


@router.post(
    "/check",
    summary="Measure drift: the document `trueup check --format json` prints",
    response_model=CheckDocument,
    responses=failures(*TOKEN, *BODY),
)
def check(request: Request, body: CheckBody, token: Reader) -> Response:
    service = service_of(request)
    selected(service.config, body.rules)
    out = io.StringIO()
    with service.connection() as connection:
        run = CheckRun(connection, service.config, rules=body.rules, keep=0, with_checks=not body.rules)
        write_check(run, out, body.limit)
    return Response(out.getvalue(), media_type="application/json")


@router.post(
    "/plan",
    summary="The dry run: every correction a repair would make",
    response_model=PlanDocument,
    responses=failures(*TOKEN, *BODY),
)
def plan(request: Request, body: PlanBody, token: Reader) -> Response:
    service = service_of(request)
    scope = scope_of(service.config, body)
    with service.connection() as connection:
        made = make_plan(
            connection,
            service.config,
            database=service.database_label,
            rules=body.rules,
            scope=scope,
            limit=body.limit,
            include_flagged=body.include_flagged,
        )
    return json_response(public_plan(plan_document(made)))


@router.post(
    "/apply",
    summary="Correct the drift (or a saved plan) in one audited transaction",
    response_model=ApplyDocument,
    responses=failures(*TOKEN, *BODY, 409, 422),
)
def apply(request: Request, body: ApplyBody, token: Writer) -> Response:
    service = service_of(request)
    saved = None
    if body.plan is not None:
        if body.rules or body.keys or body.where or body.limit or body.include_flagged:
            raise UsageError(
                "a saved plan is applied as it is; rules, keys, where, limit and include_flagged make a new one"
            )
        with about("plan"):
            saved = read_plan(to_json({"database": service.database_label, **body.plan}).encode(), "plan")
    scope = scope_of(service.config, body)
    confirmed(service, body.confirm)
    with service.connection() as connection, audit.acting_as(token.name):
        result = apply_repair(
            connection,
            service.config,
            service.engine.url,
            plan=saved,
            rules=body.rules,
            scope=scope,
            limit=body.limit,
            include_flagged=body.include_flagged,
            limits=Limits(body.max_changes, body.max_abs_delta),
            backup_dir=service.backup_dir,
            yes=True,
            triggered_by="api",
            chunk_size=body.chunk_size,
        )
    document = apply_document(result)
    if result.conflicts:
        moved = ConflictError(
            f"{len(result.conflicts)} key(s) moved since the plan was made and were refused"
            + (f"; the rest were applied as run {result.run_id}" if result.run_id else "; nothing was written")
        )
        return error_response(moved, **document)
    return json_response(document)


@router.get(
    "/runs",
    summary="The latest applies and undos, newest first",
    response_model=RunsDocument,
    responses=failures(*TOKEN),
)
def runs(request: Request, token: Reader, limit: Annotated[int, Query(ge=1, le=1000)] = 20) -> Response:
    with service_of(request).connection() as connection:
        found = audit.list_runs(connection, limit)
    return json_response(runs_document(found))


@router.get(
    "/runs/{run_id}",
    summary="One run with its changes, before and after (paged)",
    response_model=RunDocument,
    responses=failures(*TOKEN, 404),
)
def run(
    request: Request,
    token: Reader,
    run_id: RowId,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    with service_of(request).connection() as connection:
        found = audit.get_run(connection, run_id)
        changes = audit.run_changes(connection, run_id, limit, offset)
    page = {"limit": limit, "offset": offset, "total": found.changed}
    return json_response(run_document(found, changes) | {"page": page})


@router.post(
    "/runs/{run_id}/resume",
    summary="Finish the chunks a killed chunked apply left uncommitted",
    response_model=ApplyDocument,
    responses=failures(*TOKEN, *BODY, 404, 409, 422),
)
def resume(request: Request, token: Writer, run_id: RowId, body: ResumeBody | None = None) -> Response:
    service = service_of(request)
    confirmed(service, (body or ResumeBody()).confirm)
    with service.connection() as connection, audit.acting_as(token.name):
        result = resume_repair(connection, service.config, service.engine.url, run_id, yes=True, triggered_by="api")
    return json_response(apply_document(result))


@router.post(
    "/runs/{run_id}/undo",
    summary="Put back exactly what a run changed; refused if rows moved since",
    response_model=UndoDocument,
    responses=failures(*TOKEN, *BODY, 404, 409, 422),
)
def undo(request: Request, token: Admin, run_id: RowId, body: UndoBody | None = None) -> Response:
    service = service_of(request)
    body = body or UndoBody()
    confirmed(service, body.confirm)
    with service.connection() as connection, audit.acting_as(token.name):
        result = undo_run(connection, run_id, force=body.force, skip_conflicts=body.skip_conflicts, triggered_by="api")
    return json_response(undo_document(result))


@router.post(
    "/sync",
    summary="The hook after a sale: check (and repair) just these keys",
    response_model=RoundDocument,
    responses=failures(*TOKEN, *BODY, 422),
)
def sync(request: Request, body: SyncBody, token: Syncer) -> Response:
    service = service_of(request)
    selected(service.config, [body.rule], "rule")
    key_widths(service.config, body.rule, body.keys)
    if body.apply:
        confirmed(service, body.confirm)
    options = SyncOptions(
        apply=body.apply,
        max_changes=body.max_changes,
        max_abs_delta=body.max_abs_delta,
        yes=True,
        triggered_by=body.triggered_by,
        wait=body.wait,
        backup_dir=service.backup_dir,
    )
    with audit.acting_as(token.name):
        result = run_round(service.engine, service.config, body.rule, options, keys=[tuple(k) for k in body.keys])
    request.app.state.metrics.record([result])
    return json_response(round_document(result))


@router.get(
    "/history",
    summary="Drifted keys seen by sync rounds, newest first, with repairs and recurrence",
    response_model=HistoryDocument,
    responses=failures(*TOKEN),
)
def history_(
    request: Request,
    token: Reader,
    rule: str | None = None,
    key: Annotated[str | None, Query(description="A key of `rule`; commas separate a composite key.")] = None,
    since: Annotated[str | None, Query(description="Only this recent: 30m, 7d.")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 50,
) -> Response:
    service = service_of(request)
    if key is not None and rule is None:
        raise UsageError("key needs rule: keys are per rule")
    if rule is not None:
        selected(service.config, [rule], "rule")
    with about("since"):
        start = now() - duration(since) if since else None
    with service.connection() as connection:
        with about("key"):
            typed = typed_key(connection, service.config, rule, tuple(key.split(","))) if key and rule else None
        found = history.sightings(connection, rule=rule, key=typed, since=start, limit=limit)
    return json_response(history_document(found))


@router.get(
    "/rounds",
    summary="Sync rounds, oldest first: the series behind the drift-over-time chart",
    response_model=RoundsDocument,
    responses=failures(*TOKEN),
)
def rounds(
    request: Request, token: Reader, rule: str | None = None, limit: Annotated[int, Query(ge=1, le=10_000)] = 100
) -> Response:
    service = service_of(request)
    if rule is not None:
        selected(service.config, [rule], "rule")
    with service.connection() as connection:
        found = history.recent_rounds(connection, rule, limit=limit)
    return json_response({"rounds": [r._asdict() for r in found]})


@router.get(
    "/backups",
    summary="The file backups in [serve] backup_dir, oldest first",
    response_model=BackupsDocument,
    responses=failures(*TOKEN, 404),
)
def backups(request: Request, token: Admin) -> Response:
    return json_response({"backups": [backup_dict(m) for _, m in list_backups(backup_dir(service_of(request)))]})


@router.post(
    "/backups/{name}/restore",
    summary="Replace the backed-up tables with a verified backup",
    response_model=RestoreDocument,
    responses=failures(*TOKEN, *BODY, 404, 409, 422),
)
def restore(request: Request, token: Admin, name: str, body: RestoreBody) -> Response:
    service = service_of(request)
    if not body.confirm:
        error = RefusedError(
            f'restore replaces whole tables with {name}; send "confirm": true if that is what you want'
        )
        error.field = "confirm"  # type: ignore[attr-defined]
        raise error
    found = {m.file: path for path, m in list_backups(backup_dir(service))}
    if name not in found:
        raise NotFoundError(f"no backup named {name!r} (GET /api/backups lists them)")
    with service.connection() as connection, audit.acting_as(token.name):
        done = restore_backup(connection, service.engine.url, found[name], backup_dir(service), triggered_by="api")
    return json_response(restore_document(done))


def backup_dir(service: Service) -> PathType:
    if service.backup_dir is None:
        raise NotFoundError("this service keeps no file backups: set [serve] backup_dir")
    return service.backup_dir


@router.get(
    "/tokens",
    summary="The API tokens (names and scopes; never the tokens)",
    response_model=TokensDocument,
    responses=failures(*TOKEN),
)
def list_tokens(request: Request, token: Admin) -> Response:
    with service_of(request).connection() as connection:
        found = tokens.list_tokens(connection)
    return json_response(tokens.tokens_document(found))


@router.post(
    "/tokens",
    summary="Create a token; the response is the only time it is shown",
    status_code=201,
    response_model=CreatedDocument,
    responses=failures(*TOKEN, *BODY),
)
def create_token(request: Request, body: TokenBody, token: Admin) -> Response:
    with service_of(request).connection() as connection, about("name"):
        secret = tokens.create(connection, body.name, body.scope)
    return json_response(CreatedDocument(name=body.name, scope=body.scope, token=secret), 201)


@router.delete("/tokens/{name}", summary="Revoke a token", response_model=Revoked, responses=failures(*TOKEN, 404))
def revoke_token(request: Request, token: Admin, name: str) -> Response:
    service = service_of(request)
    with service.connection() as connection:
        tokens.revoke(connection, name)
    service.forget_tokens()
    return json_response(Revoked(revoked=name))


# -- request checks (shapes only: what the values mean is the library's business) ------------


def selected(config: Config, names: list[str] | None, field: str = "rules") -> None:
    with about(field):
        config.select_rules(names)


def key_widths(config: Config, rule: str, keys: list[list[KeyValue]]) -> None:
    width = len(config.rule(rule).recorded.key)
    for index, key in enumerate(keys):
        if len(key) != width:
            error = UsageError(f"keys[{index}]: rule {rule!r} has a {width}-column key; got {len(key)} value(s)")
            error.field = f"keys.{index}"  # type: ignore[attr-defined]
            raise error


def scope_of(config: Config, body: PlanBody) -> Scope:
    selected(config, body.rules)
    for rule in config.select_rules(body.rules) if body.keys else ():
        key_widths(config, rule.name, body.keys or [])
    return Scope(keys=tuple(tuple(k) for k in body.keys or ()), where=body.where)


def confirmed(service: Service, confirm: bool) -> None:
    """Production databases need `"confirm": true` to be written to."""
    reason = production_reason(service.engine.url, service.config.database.production_pattern)
    if reason and not confirm:
        error = RefusedError(f'this database looks like production ({reason}); send "confirm": true to write to it')
        error.field = "confirm"  # type: ignore[attr-defined]
        raise error


def duration(text: str) -> Any:
    try:
        return parse_duration(text)
    except ValueError as error:
        raise UsageError(str(error)) from None


def public_plan(document: PlanDocument) -> PlanDocument:
    """A plan document without the database it was made for (pages and API bodies never name it)."""
    return {k: v for k, v in document.items() if k != "database"}  # type: ignore[return-value]
