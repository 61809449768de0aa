"""What every request shares: the config, one engine for the target database, the ledger, the sessions.

One `Service` lives as long as the process. Its engine's pool is shared by
every request thread, so a hook pays for a query, not a connection. The ledger
is opened on first use (opening it creates or upgrades its tables).
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
from trueup.ledger import Ledger
from trueup.serve import tokens
from trueup.serve.tokens import Token

SESSION_HOURS = 12


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

    workspace: Path = field(init=False)  # uploads and cost outputs, removed when the service stops

    @property
    def backup_dir(self) -> Path | None:
        """Where applies back up first: `[serve] backup_dir` (none by default)."""
        return self.config.serve.backup_dir

    def __post_init__(self) -> None:
        self.engine = open_engine(self.config.database_url(self.database))
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
                self._ledger = Ledger(self.config.ledger_url(self.database))
            return self._ledger

    def authenticate(self, secret: str) -> Token | None:
        with self.connection() as connection:
            return tokens.authenticate(connection, secret)

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
