"""The operator dashboard: server-rendered pages (Jinja2) over the same library calls as the API.

Every page reads without JavaScript; the one script (shipped in the package,
like the stylesheet) only rewrites UTC times into the viewer's timezone. A
person signs in with a token and gets a session cookie (HttpOnly,
SameSite=Strict, Secure behind TLS); every form that changes something carries
the session's CSRF token and repeats what it will do before it does it. Each
page has a JSON twin under /api.
"""

from __future__ import annotations

import hmac
import inspect
import json
import secrets
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from functools import wraps
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, File, Form, Request, Response, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, PackageLoader, select_autoescape

from trueup import __version__, guard
from trueup.errors import ConflictError, TrueupError
from trueup.reconcile import audit, history
from trueup.reconcile.apply import apply as apply_repair
from trueup.reconcile.audit import now
from trueup.reconcile.check import CheckRun
from trueup.reconcile.guard import Limits
from trueup.reconcile.plan import make_plan, plan_document, read_plan
from trueup.reconcile.query import Scope
from trueup.reconcile.undo import undo_run
from trueup.report import chart
from trueup.report.format import key_text, number, to_json
from trueup.report.guard import guard_row
from trueup.serve import api, cost_api
from trueup.serve.auth import COOKIE, allowed, check_csrf, service_of, signed_in
from trueup.serve.errors import ApiError, kind_of, status_of
from trueup.serve.service import Session
from trueup.serve.tokens import Token

router = APIRouter(include_in_schema=False)
PAGE = 50  # rows per page
SIGNIN_COOKIE = "trueup_signin"
SPARK_ROUNDS = 30
_TEMPLATES = Environment(
    loader=PackageLoader("trueup.serve", "templates"),
    autoescape=select_autoescape(["html", "j2"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


class SignIn(Exception):
    """Raised by a page when nobody is signed in: answered with a redirect to /signin."""


class Viewer:
    def __init__(self, token: Token, session: Session):
        self.token, self.session = token, session

    def can(self, scope: str) -> bool:
        return self.token.allows(scope)


def mount(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(packages=[("trueup.serve", "static")]), name="static")
    app.state.error_page = error_page

    @app.exception_handler(SignIn)
    async def sign_in_first(request: Request, error: SignIn) -> Response:
        return RedirectResponse("/signin", status_code=303)


def render(request: Request, template: str, viewer: Viewer | None, status: int = 200, **values: Any) -> HTMLResponse:
    html = _TEMPLATES.get_template(template).render(
        viewer=viewer,
        csrf=viewer.session.csrf if viewer else "",
        version=__version__,
        number=number,
        key_text=key_text,
        when=when,
        path=request.url.path,
        **values,
    )
    return HTMLResponse(html, status_code=status, headers=_SECURITY_HEADERS)


_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def error_page(request: Request, status: int, kind: str, message: str) -> HTMLResponse:
    found = signed_in(request) if kind not in ("unauthorized",) else None
    viewer = Viewer(*found) if found else None
    return render(request, "error.html.j2", viewer, status, status_code=status, kind=kind, message=message)


def page(scope: str = "read") -> Callable[[Callable[..., Response]], Callable[..., Response]]:
    """A dashboard page: signed in with at least `scope`; library errors shown as a page, not a traceback."""

    def decorate(function: Callable[..., Response]) -> Callable[..., Response]:
        @wraps(function)
        def wrapper(request: Request, *args: Any, **kwargs: Any) -> Response:
            found = signed_in(request)
            if found is None:
                raise SignIn
            viewer = Viewer(*found)
            try:
                allowed(viewer.token, scope)
                if request.method == "POST":
                    check_csrf(viewer.session, kwargs.pop("csrf", None))
                return function(request, viewer, *args, **kwargs)
            except ApiError as error:
                return error_page(request, error.status, error.kind, error.message)
            except TrueupError as error:
                return error_page(request, status_of(error), kind_of(error), str(error))

        signature = inspect.signature(function)
        wrapper.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=[p for name, p in signature.parameters.items() if name != "viewer"]
        )
        return wrapper

    return decorate


def when(moment: Any) -> Any:
    """A UTC time as `<time>`: UTC in the page, the viewer's local time once the script has run."""
    from markupsafe import Markup

    if moment is None:
        return "—"
    iso = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    return Markup(f'<time datetime="{iso}" title="{moment:%Y-%m-%d %H:%M:%S} UTC">{moment:%Y-%m-%d %H:%M} UTC</time>')


# -- sign in -----------------------------------------------------------------------------------


@router.get("/signin")
def signin_form(request: Request) -> Response:
    return _signin(request, None, 200)


@router.post("/signin")
def signin(request: Request, token: Annotated[str, Form()], csrf: Annotated[str, Form()] = "") -> Response:
    service = service_of(request)
    expected = request.cookies.get(SIGNIN_COOKIE, "")
    if not expected or not hmac.compare_digest(expected, csrf):
        return _signin(request, "The form was stale; try again.", 403)
    if service.authenticate(token.strip()) is None:
        return _signin(request, "That token is not valid here.", 401)
    response = RedirectResponse("/", status_code=303)
    secure = request.url.scheme == "https"
    response.set_cookie(
        COOKIE, service.sign_in(token.strip()), httponly=True, samesite="strict", secure=secure, max_age=12 * 3600
    )
    response.delete_cookie(SIGNIN_COOKIE)
    return response


def _signin(request: Request, problem: str | None, status: int) -> Response:
    """The sign-in form, with a fresh double-submit CSRF token (cookie and hidden field)."""
    token = secrets.token_urlsafe(24)
    response = render(request, "signin.html.j2", None, status, problem=problem, signin_csrf=token)
    response.set_cookie(SIGNIN_COOKIE, token, httponly=True, samesite="strict", secure=request.url.scheme == "https")
    return response


@router.post("/signout")
@page()
def signout(request: Request, viewer: Viewer, csrf: Annotated[str, Form()] = "") -> Response:
    service_of(request).sign_out(request.cookies.get(COOKIE))
    response = RedirectResponse("/signin", status_code=303)
    response.delete_cookie(COOKIE)
    return response


# -- overview and rules ------------------------------------------------------------------------


@router.get("/")
@page()
def overview(request: Request, viewer: Viewer) -> Response:
    service = service_of(request)
    with service.connection() as connection:
        report = CheckRun(connection, service.config, keep=0).report()
        rounds = {r.name: history.recent_rounds(connection, r.name, limit=SPARK_ROUNDS) for r in report.rules}
    stale_after = _stale_after(request)
    rows = []
    for rule in report.rules:
        series = [r for r in rounds[rule.name] if r.status != "skipped"]
        last = series[-1] if series else None
        age = now() - last.started_at if last else None
        stale = last is None or age > stale_after or last.status in ("refused", "residual")
        spark = chart.sparkline([r.drifted for r in series], title=f"drifted keys, last {len(series)} rounds")
        rows.append({"rule": rule, "last": last, "age": _age(age), "stale": stale, "spark": spark})
    return render(request, "overview.html.j2", viewer, rows=rows, checks=report.checks)


@router.get("/rules/{name}")
@page()
def rule_page(request: Request, viewer: Viewer, name: str, key: str | None = None, offset: int = 0) -> Response:
    service = service_of(request)
    api.selected(service.config, [name], "rule")
    scope = Scope(keys=(tuple(key.split(",")),)) if key else Scope()
    offset = max(offset, 0)
    with service.connection() as connection:
        run = CheckRun(connection, service.config, rules=[name], scope=scope, keep=offset + PAGE, with_checks=False)
        [result] = run.report().rules
        rounds = history.recent_rounds(connection, name, limit=200)
        recurring = [s for s in history.sightings(connection, rule=name, limit=200) if s.recurring]
    series = [(r.started_at, r.drifted, r.corrected) for r in rounds if r.status != "skipped"]
    return render(
        request,
        "rule.html.j2",
        viewer,
        rule=result,
        worst=result.worst[offset : offset + PAGE],
        offset=offset,
        page=PAGE,
        key=key or "",
        timeline=chart.timeline(series, title="Drift over time (sync rounds)"),
        bars=chart.diverging_bars([(key_text(d.key), d.delta) for d in result.worst[:15]], title="Worst keys"),
        recurring=recurring,
    )


@router.get("/rules/{name}/plan")
@page("write")
def plan_page(request: Request, viewer: Viewer, name: str, key: str | None = None) -> Response:
    service = service_of(request)
    api.selected(service.config, [name], "rule")
    scope = Scope(keys=tuple(tuple(k.split(",")) for k in (key or "").split(";") if k))
    with service.connection() as connection:
        made = make_plan(connection, service.config, database=service.database_label, rules=[name], scope=scope)
    [rule] = made.rules
    document = api.public_plan(plan_document(made))
    return render(
        request,
        "plan.html.j2",
        viewer,
        plan=made,
        rule=rule,
        saved=to_json(document),
        max_abs_delta=made.max_abs_delta,
        key=key or "",
    )


@router.post("/rules/{name}/apply")
@page("write")
def apply_page(
    request: Request,
    viewer: Viewer,
    name: str,
    plan: Annotated[str, Form()],
    max_changes: Annotated[int, Form(ge=0)],
    max_abs_delta: Annotated[str, Form()],
    confirm: Annotated[bool, Form()] = False,
    csrf: Annotated[str, Form()] = "",
) -> Response:
    service = service_of(request)
    if not confirm:
        raise ApiError(400, "not_confirmed", "tick the confirmation to apply the plan", "confirm")
    saved = read_plan(json.dumps({**json.loads(plan), "database": service.database_label}).encode(), "plan")
    api.confirmed(service, confirm)
    with service.connection() as connection, audit.acting_as(viewer.token.name):
        result = apply_repair(
            connection,
            service.config,
            service.engine.url,
            plan=saved,
            limits=Limits(max_changes, _decimal(max_abs_delta, "max_abs_delta")),
            backup_dir=service.backup_dir,
            yes=True,
            triggered_by="dashboard",
        )
    if result.run_id is None:
        return render(request, "applied.html.j2", viewer, result=result, rule=name)
    return RedirectResponse(f"/runs/{result.run_id}?applied=1", status_code=303)


# -- runs --------------------------------------------------------------------------------------


@router.get("/guard")
@page()
def guard_page(request: Request, viewer: Viewer) -> Response:
    service = service_of(request)
    with service.connection() as connection:
        guards = [guard_row(g, guard.changed_since(connection, service.config, g)) for g in guard.status(connection)]
        found = guard.violations(connection, None, 50)
    return render(request, "guard.html.j2", viewer, guards=guards, violations=found)


@router.get("/runs")
@page()
def runs_page(request: Request, viewer: Viewer) -> Response:
    with service_of(request).connection() as connection:
        found = audit.list_runs(connection, 100)
    return render(request, "runs.html.j2", viewer, runs=found)


@router.get("/runs/{run_id}")
@page()
def run_page(request: Request, viewer: Viewer, run_id: int, offset: int = 0, applied: int = 0) -> Response:
    offset = max(offset, 0)
    with service_of(request).connection() as connection:
        found = audit.get_run(connection, run_id)
        changes = audit.run_changes(connection, run_id, PAGE, offset)
    return render(request, "run.html.j2", viewer, run=found, changes=changes, offset=offset, page=PAGE, applied=applied)


@router.post("/runs/{run_id}/undo")
@page("admin")
def undo_page(
    request: Request,
    viewer: Viewer,
    run_id: int,
    confirm: Annotated[bool, Form()] = False,
    skip_conflicts: Annotated[bool, Form()] = False,
    csrf: Annotated[str, Form()] = "",
) -> Response:
    service = service_of(request)
    if not confirm:
        raise ApiError(400, "not_confirmed", "tick the confirmation to undo the run", "confirm")
    api.confirmed(service, confirm)
    try:
        with service.connection() as connection, audit.acting_as(viewer.token.name):
            result = undo_run(connection, run_id, skip_conflicts=skip_conflicts, triggered_by="dashboard")
    except ConflictError as error:
        return render(request, "undo_conflict.html.j2", viewer, 409, run_id=run_id, message=str(error))
    return RedirectResponse(f"/runs/{result.run_id}", status_code=303)


# -- cost --------------------------------------------------------------------------------------


@router.get("/cost")
@page()
def cost_form(request: Request, viewer: Viewer) -> Response:
    return render(request, "cost.html.j2", viewer, result=None)


@router.post("/cost")
@page()
def cost_page(
    request: Request,
    viewer: Viewer,
    sales: Annotated[UploadFile, File()],
    lots: Annotated[UploadFile, File()],
    method: Annotated[str, Form()] = "fifo",
    csrf: Annotated[str, Form()] = "",
) -> Response:
    done = cost_api.run_cost(service_of(request), sales, lots, method=method)
    links = {name: f"/cost/{done.id}/{name}" for name in done.files}
    return render(request, "cost.html.j2", viewer, result=done.document, links=links)


@router.get("/cost/{run_id}/{name}")
@page()
def cost_file(request: Request, viewer: Viewer, run_id: str, name: str) -> FileResponse:
    return FileResponse(cost_api.output_path(service_of(request), run_id, name), filename=name)


# -- ledger ------------------------------------------------------------------------------------


@router.get("/ledger")
@page()
def ledger_page(request: Request, viewer: Viewer, item: str | None = None, lot: str | None = None) -> Response:
    values: dict[str, Any] = {"item": item or "", "lot": lot, "positions": [], "lots": [], "events": []}
    if item:
        books = service_of(request).ledger()
        values["positions"] = books.positions(item)
        values["lots"] = [(value, books.lot(value.lot, item=item).parents) for value in books.valuation(item)]
        if lot:
            values["events"] = books.history(lot, item=item)
    return render(request, "ledger.html.j2", viewer, **values)


def _decimal(text: str, field: str) -> Decimal | None:
    try:
        return Decimal(text) if text.strip() else None
    except InvalidOperation:
        raise ApiError(400, "bad_request", f"{field}: {text!r} is not a number", field) from None


def _stale_after(request: Request) -> timedelta:
    """A rule's last round is stale after three scheduled intervals (a day when the service runs none)."""
    every = getattr(request.app.state, "watch_every", None)
    return every * 3 if every else timedelta(days=1)


def _age(age: timedelta | None) -> str:
    if age is None:
        return "never"
    seconds = int(age.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"
