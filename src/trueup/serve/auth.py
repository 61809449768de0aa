"""Who is asking: a bearer token for the API, a session cookie for the dashboard; scopes nest.

`read` ⊂ `sync` (the sync hook, ledger postings) ⊂ `write` (apply, cost
writes) ⊂ `admin` (undo, restore, tokens). No valid token is 401; a token
whose scope is too small is 403. A dashboard session holds the token it was
opened with and checks it again on every page, so a revoked token signs its
sessions out; state-changing forms carry the session's CSRF token.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from trueup.serve.errors import ApiError
from trueup.serve.service import Service, Session
from trueup.serve.tokens import Token

COOKIE = "trueup_session"
_SCHEME = HTTPBearer(auto_error=False, description="A token from `trueup token create NAME --scope SCOPE`.")


def service_of(request: Request) -> Service:
    return request.app.state.service


def bearer(scope: str) -> Callable[[Request], Awaitable[Token]]:
    """A dependency: the request's bearer token, if valid and at least `scope`.

    It runs on the event loop: a token verified within the last second costs no query and no
    thread; only a token to look up goes to a request thread (see `Service.verify`).
    """

    async def dependency(
        request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_SCHEME)] = None
    ) -> Token:
        if credentials is None or not credentials.credentials.strip():
            raise ApiError(401, "unauthorized", "send Authorization: Bearer TOKEN (trueup token create makes one)")
        service, secret = service_of(request), credentials.credentials.strip()
        return allowed(service.remembered(secret) or await run_in_threadpool(service.verify, secret), scope)

    return dependency


def allowed(token: Token | None, scope: str) -> Token:
    if token is None:
        raise ApiError(401, "unauthorized", "the token is not valid (revoked, or never created here)")
    if not token.allows(scope):
        raise ApiError(403, "forbidden", f"token {token.name!r} has scope {token.scope!r}; this needs {scope!r}")
    return token


def signed_in(request: Request) -> tuple[Token, Session] | None:
    """The dashboard session's token and session, or None when not signed in (or its token was revoked)."""
    service = service_of(request)
    session = service.session(request.cookies.get(COOKIE))
    if session is None:
        return None
    token = service.authenticate(session.secret)
    if token is None:
        service.sign_out(request.cookies.get(COOKIE))
        return None
    return token, session


def check_csrf(session: Session, presented: str | None) -> None:
    if not presented or not hmac.compare_digest(session.csrf, presented):
        raise ApiError(403, "csrf", "the form is stale or came from another site; reload the page and try again")
