"""Engines, dialect differences and identifier safety.

Everything that differs between SQLite, PostgreSQL and MySQL/MariaDB lives in
one `Dialect` subclass per database, chosen by `dialect_for()`. The rest of
trueup builds SQL with SQLAlchemy Core and asks the dialect only for the few
things Core does not paper over.

Identifiers from the config are validated by `trueup.config` and quoted here
with the database's own preparer; user SQL fragments (`from`, `where`,
checks) go through `user_sql()`, which only protects them from SQLAlchemy's
`:name` bind-parameter syntax.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.engine.url import URL
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError

from trueup.errors import ConfigError, DatabaseError

log = logging.getLogger(__name__)

# The drivers trueup ships with, used when a URL names only the database kind.
_DEFAULT_DRIVERS = {"postgresql": "psycopg", "postgres": "psycopg", "mysql": "pymysql", "mariadb": "pymysql"}
_DRIVER_PACKAGES = {
    "psycopg": "psycopg[binary]",
    "psycopg2": "psycopg2-binary",
    "asyncpg": "asyncpg",
    "pymysql": "pymysql",
    "mysqldb": "mysqlclient",
    "mysqlconnector": "mysql-connector-python",
    "pysqlite": "(built into Python)",
}


def parse_url(url: str) -> URL:
    """A SQLAlchemy URL with trueup's default drivers filled in."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(f"not a database URL: {redact(url)!r} (expected e.g. sqlite:///shop.db)") from None
    backend, _, driver = parsed.drivername.partition("+")
    if not driver and backend in _DEFAULT_DRIVERS:
        kind = "postgresql" if backend == "postgres" else backend
        parsed = parsed.set(drivername=f"{kind}+{_DEFAULT_DRIVERS[backend]}")
    return parsed


def redact(url: str | URL) -> str:
    """The URL as text with any password replaced by ***."""
    if isinstance(url, URL):
        return url.render_as_string(hide_password=True)
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def open_engine(url: str) -> Engine:
    """An engine for `url`; a missing driver or bad URL becomes a `TrueupError`."""
    parsed = parse_url(url)
    try:
        engine = sa.create_engine(parsed, **dialect_for_name(parsed.get_backend_name()).engine_options(parsed))
    except NoSuchModuleError:
        raise ConfigError(f"unknown database kind in URL {redact(parsed)!r}") from None
    except ModuleNotFoundError as error:
        driver = parsed.get_driver_name()
        package = _DRIVER_PACKAGES.get(driver, error.name)
        raise DatabaseError(
            f"the {driver} driver for {parsed.get_backend_name()} is not installed: pip install '{package}'"
        ) from None
    return engine


@contextmanager
def connect(engine: Engine) -> Iterator[Connection]:
    """A connection; failure to connect names the host and port, never the password."""
    try:
        connection = engine.connect()
    except DBAPIError as error:
        raise DatabaseError(f"cannot connect to {describe(engine.url)}: {driver_message(error, engine.url)}") from None
    with connection:
        yield connection


def describe(url: URL) -> str:
    if url.get_backend_name() == "sqlite":
        return f"SQLite database {url.database or ':memory:'}"
    port = url.port or {"postgresql": 5432, "mysql": 3306, "mariadb": 3306}.get(url.get_backend_name())
    return f"{url.get_backend_name()} at {url.host or 'localhost'}:{port} (database {url.database!r})"


def driver_message(error: SQLAlchemyError, url: URL | None = None) -> str:
    """The driver's own first line, without SQLAlchemy's SQL echo or any password."""
    original = getattr(error, "orig", None) or error
    text = str(original).strip().splitlines()[0] if str(original).strip() else type(original).__name__
    if url is not None and url.password:
        text = text.replace(str(url.password), "***")
    return text


# -- identifiers -------------------------------------------------------------------------------


def quote_path(preparer: Any, path: str) -> str:
    """`li.product_id` -> each part quoted by the database's own rules."""
    return ".".join(preparer.quote(part) for part in path.split("."))


def column_ref(preparer: Any, path: str) -> sa.ColumnElement[Any]:
    """A column reference usable inside Core expressions without adding anything to FROM."""
    return sa.literal_column(quote_path(preparer, path))


def table_ref(path: str) -> sa.TableClause:
    """`schema.table` or `table` as a lightweight Core table."""
    schema, _, name = path.rpartition(".")
    return sa.table(name, schema=schema or None)


def user_sql(text: str) -> sa.TextClause:
    """The user's SQL as written; colons are escaped so `'10:00'` is not a bind parameter."""
    return sa.text(text.replace(":", r"\:"))


# -- dialects ----------------------------------------------------------------------------------

STREAM_BATCH = 2000  # rows fetched per round trip when streaming


@dataclass(frozen=True)
class Dialect:
    """Base behaviour (standard SQL); subclasses override what their database does differently."""

    name: str = "default"

    def engine_options(self, url: URL) -> dict[str, Any]:
        return {}

    def is_future(self, column: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
        """True where a timestamp column lies after the database's current time."""
        return column > sa.func.current_timestamp()

    def stream_options(self) -> dict[str, Any]:
        return {"stream_results": True, "yield_per": STREAM_BATCH}

    def stream(self, connection: Connection, statement: sa.Executable) -> Iterator[Sequence[Any]]:
        """The rows of `statement`, fetched a batch at a time so memory stays flat however many there are."""
        with connection.execute(statement, execution_options=self.stream_options()) as result:
            yield from result  # closed even when the caller stops early, so the connection is free again


@dataclass(frozen=True)
class SQLiteDialect(Dialect):
    name: str = "sqlite"

    def is_future(self, column: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
        # SQLite stores times as text in several layouts; julianday() reads them all.
        return sa.func.julianday(column) > sa.func.julianday("now")

    def stream_options(self) -> dict[str, Any]:
        return {"yield_per": 2000}  # sqlite3 cursors already fetch lazily


@dataclass(frozen=True)
class PostgreSQLDialect(Dialect):
    name: str = "postgresql"

    def is_future(self, column: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
        # The untyped 'now' takes the type of the left side (timestamp or timestamptz) when the statement
        # is parsed: the same instant as CURRENT_TIMESTAMP, without converting a `timestamp` column to
        # timestamptz row by row (a time-zone lookup each: a third slower over 20M rows). Adding a zero
        # interval keeps that side a time (a date becomes its midnight) and makes a text column an
        # error, as CURRENT_TIMESTAMP did, rather than a text comparison. The literal is read when the
        # statement is parsed, which suits the comparison: stream() never prepares it.
        return column + sa.literal_column("INTERVAL '0 seconds'") > sa.literal_column("'now'")

    def stream(self, connection: Connection, statement: sa.Executable) -> Iterator[Sequence[Any]]:
        # Server-side cursors (DECLARE CURSOR), SQLAlchemy's way to stream, are never given a parallel
        # plan, so a big comparison ran 3x slower than the same query sent plainly. psycopg 3 streams a
        # plain query instead, in chunks where libpq allows it. Bind values go to psycopg as they are:
        # the statements streamed here bind only plain scalars, which psycopg adapts natively.
        if connection.dialect.driver != "psycopg":
            yield from super().stream(connection, statement)
            return
        psycopg = connection.dialect.loaded_dbapi
        compiled = statement.compile(dialect=connection.dialect, compile_kwargs={"render_postcompile": True})
        sql, params = str(compiled), compiled.params
        size = STREAM_BATCH if psycopg.capabilities.has_stream_chunked() else 1
        if not connection.in_transaction():
            connection.begin()  # as execute() would: so the caller's commit() or rollback() reach this query
        with connection.connection.driver_connection.cursor() as cursor:
            try:
                yield from cursor.stream(sql, params, size=size)
            except psycopg.Error as error:
                raise DBAPIError.instance(sql, params, error, psycopg.Error) from error


@dataclass(frozen=True)
class MySQLDialect(Dialect):
    name: str = "mysql"


_DIALECTS: dict[str, Dialect] = {
    "sqlite": SQLiteDialect(),
    "postgresql": PostgreSQLDialect(),
    "mysql": MySQLDialect(),
    "mariadb": MySQLDialect(name="mariadb"),
}


def dialect_for_name(backend: str) -> Dialect:
    return _DIALECTS.get(backend, Dialect(name=backend))


def dialect_for(bind: Engine | Connection) -> Dialect:
    return dialect_for_name(bind.dialect.name)
