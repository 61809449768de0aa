"""Real databases for tests: SQLite files, and fresh PostgreSQL schemas / MariaDB databases.

Each server test gets its own namespace (a PostgreSQL schema selected through
search_path, or a MariaDB database) that is dropped afterwards, so tests never
see each other's tables. Off CI a server that is not answering skips its
tests with the reason; under CI=true it fails them, because CI must run them.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from functools import cache
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

SERVERS = {
    "postgresql": os.environ.get("TRUEUP_TEST_POSTGRESQL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
    "mariadb": os.environ.get("TRUEUP_TEST_MARIADB", "mysql+pymysql://root@127.0.0.1:3306/test"),
}
START_HINTS = {
    "postgresql": "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    "mariadb": "start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd",
}
KINDS = ("sqlite", "postgresql", "mariadb")


@cache
def server_problem(kind: str) -> str | None:
    """Why the server cannot be used, or None when it answers."""
    engine = sa.create_engine(SERVERS[kind], connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except Exception as error:  # any failure to reach it means the same thing here
        first = str(getattr(error, "orig", error)).splitlines()[0]
        where = make_url(SERVERS[kind]).render_as_string(hide_password=True)
        return f"{kind} is not answering at {where} ({first}); start it: {START_HINTS[kind]}"
    finally:
        engine.dispose()
    return None


def require_server(kind: str) -> None:
    problem = server_problem(kind)
    if problem is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI must run the {kind} tests: {problem}", pytrace=False)
    pytest.skip(problem)


@dataclass
class Database:
    """One isolated database namespace of some kind, with a few conveniences for tests."""

    kind: str
    url: str
    engine: Engine

    def execute(self, sql: str, params: Any = None) -> None:
        with self.engine.begin() as connection:
            connection.execute(sa.text(sql), params or {})

    def rows(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        with self.engine.connect() as connection:
            return [tuple(row) for row in connection.execute(sa.text(sql), params or {})]

    def scalar(self, sql: str, params: Any = None) -> Any:
        with self.engine.connect() as connection:
            return connection.execute(sa.text(sql), params or {}).scalar()

    def create(self, metadata: sa.MetaData) -> None:
        metadata.create_all(self.engine)

    def insert(self, table: sa.Table, rows: list[dict[str, Any]]) -> None:
        if rows:
            with self.engine.begin() as connection:
                connection.execute(table.insert(), rows)


def make_database(kind: str, tmp_path: Any) -> tuple[Database, Any]:
    """A fresh database of `kind` and the function that drops it."""
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path}/test.db"
        engine = sa.create_engine(url, connect_args={"timeout": 30})  # as patient as trueup with busy writers
        return Database(kind, url, engine), engine.dispose
    require_server(kind)
    name = f"trueup_t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(SERVERS[kind], isolation_level="AUTOCOMMIT")
    base = make_url(SERVERS[kind])
    with admin.connect() as connection:
        if kind == "postgresql":
            connection.execute(sa.text(f'CREATE SCHEMA "{name}"'))
            url = base.update_query_dict({"options": f"-csearch_path={name}"})
        else:
            connection.execute(sa.text(f"CREATE DATABASE `{name}`"))
            url = base.set(database=name)
    text_url = url.render_as_string(hide_password=False)
    engine = sa.create_engine(text_url)

    def drop() -> None:
        engine.dispose()
        with admin.connect() as connection:
            if kind == "postgresql":
                connection.execute(sa.text(f'DROP SCHEMA "{name}" CASCADE'))
            else:
                connection.execute(sa.text(f"DROP DATABASE `{name}`"))
        admin.dispose()

    return Database(kind, text_url, engine), drop
