"""What every request shares: the config, one engine for the target database, the ledger, the sessions.

One `Service` lives as long as the process. Its engine's pool is shared by
every request thread, so a hook pays for a query, not a connection. It keeps
`POOL_SIZE` connections open (and opens up to 10 more while busy), as does the
ledger's: 16 concurrent clients, one of them holding a round's lock on a second
connection, never wait for one (SQLAlchemy's default keeps 5). The ledger is
opened on first use (opening it creates or upgrades its tables).

A bearer token, once verified against `trueup_tokens`, is remembered (by its
hash) for `TOKEN_SECONDS`, so a busy client costs the database one token query
a second instead of one per request. Revoking a token through the service
(`DELETE /api/tokens/{name}`) forgets every remembered token at once; a revoke
from elsewhere (`trueup token revoke`, another instance) takes effect within
`TOKEN_SECONDS`. Dashboard sessions always ask the database.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import Connection, Engine

from trueup.config import Config
from trueup.db import connect, open_engine, redact
from trueup.expiring import Expiring
from trueup.ledger import Ledger
from trueup.serve import tokens
from trueup.serve.tokens import Token

SESSION_HOURS = 12
TOKEN_SECONDS = 1.0  # how long a verified bearer token is taken on trust
POOL_SIZE = 20  # connections each engine keeps open for concurrent requests


@dataclass
class Session:
    secret: str  # the token the person signed in with: re-checked on every page, so revoking it signs them out
    csrf: str


@dataclass
class Service:
    config: Config
    database: str | None = None  # --database, overriding the config
    engine: Engine = field(init=False)
    _ledger: Ledger | None = field(default=None, init=False)
    _sessions: dict[str, Session] = field(default_factory=dict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _verified: Expiring[str, Token] = field(default_factory=lambda: Expiring(TOKEN_SECONDS), init=False)

    workspace: Path = field(init=False)  # uploads and cost outputs, removed when the service stops

    @property
    def backup_dir(self) -> Path | None:
        """Where applies back up first: `[serve] backup_dir` (none by default)."""
        return self.config.serve.backup_dir

    def __post_init__(self) -> None:
        self.engine = open_engine(self.config.database_url(self.database), pool_size=POOL_SIZE)
        self.workspace = Path(tempfile.mkdtemp(prefix="trueup-serve-"))

    @property
    def database_label(self) -> str:
        """The database as plans record it (password hidden); never shown on a page."""
        return redact(self.engine.url)

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        with connect(self.engine) as connection:
            yield connection

    def ledger(self) -> Ledger:
        with self._lock:
            if self._ledger is None:
                self._ledger = Ledger(self.config.ledger_url(self.database), pool_size=POOL_SIZE)
            return self._ledger

    def authenticate(self, secret: str) -> Token | None:
        """The token `secret` is, asking the database."""
        with self.connection() as connection:
            return tokens.authenticate(connection, secret)

    def remembered(self, secret: str) -> Token | None:
        """The token `secret` is, if verified less than `TOKEN_SECONDS` ago (no database query)."""
        return self._verified.get(tokens.digest(secret))

    def verify(self, secret: str) -> Token | None:
        """`authenticate`, remembering a valid token for `TOKEN_SECONDS` (a miss is never remembered)."""
        return self._verified.fetch(tokens.digest(secret), lambda: self.authenticate(secret))

    def forget_tokens(self) -> None:
        """After a revoke: every token is verified against the database again."""
        self._verified.clear()

    def sign_in(self, secret: str) -> str:
        """A new session id for a valid token (the caller has checked it)."""
        session_id = secrets.token_urlsafe(32)
        with self._lock:
            self._sessions[session_id] = Session(secret, secrets.token_urlsafe(32))
        return session_id

    def session(self, session_id: str | None) -> Session | None:
        with self._lock:
            return self._sessions.get(session_id or "")

    def sign_out(self, session_id: str | None) -> None:
        with self._lock:
            self._sessions.pop(session_id or "", None)

    def close(self) -> None:
        if self._ledger is not None:
            self._ledger.close()
        self.engine.dispose()
        shutil.rmtree(self.workspace, ignore_errors=True)
