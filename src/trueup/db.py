"""Engines, dialect differences and identifier safety.

Everything that differs between SQLite, PostgreSQL and MySQL/MariaDB lives in
one `Dialect` subclass per database, chosen by `dialect_for()`. The rest of
trueup builds SQL with SQLAlchemy Core and asks the dialect only for the few
things Core does not paper over.

Identifiers from the config (any characters; parts split by `split_name`) are
quoted here by the database's own preparer. User SQL is passed as written,
protected only from SQLAlchemy's `:name` bind-parameter syntax, through one of
two doors: `user_condition()` for a filter (a `where`, `--where`), which is
always one parenthesised expression, so `a OR b` met by `AND id IN (5)` stays
`(a OR b) AND id IN (5)`; and `user_sql()` for a `from` clause or a whole
statement (a check), which stands alone and is never joined to a condition.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import re
import socket
import sqlite3
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.engine.url import URL
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError

from trueup.errors import ConfigError, DatabaseError, UnreachableError
from trueup.names import split_name

log = logging.getLogger(__name__)

Source = tuple[list[str], sa.Select[Any]] | None  # INSERT … SELECT: the columns written, the SELECT

# The drivers trueup ships with, used when a URL names only the database kind.
# Memory for the hash aggregate of a repair, per operation, for trueup's own transactions only.
WORK_MEM = "64MB"

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
    if parsed.host and "@" in parsed.host:
        # `user:p@ss@host`: the URL's first `@` ends the password early, and the rest of the password
        # would be taken for the host name (and printed in every connection error).
        raise ConfigError("the database URL has an '@' in its password or user name: write it as %40")
    backend, _, driver = parsed.drivername.partition("+")
    if not driver and backend in _DEFAULT_DRIVERS:
        kind = "postgresql" if backend == "postgres" else backend
        parsed = parsed.set(drivername=f"{kind}+{_DEFAULT_DRIVERS[backend]}")
    return parsed


# Query parameters whose values are secrets or lead to them: libpq's `password`, `passfile`,
# `sslpassword`, `sslkey`; PyMySQL's `passwd`, `ssl_key`; and anything named like a token or secret.
_SECRET_PARAMETER = re.compile(r"pass|secret|token|key|credential|auth", re.IGNORECASE)
_HIDDEN = "***"


def redact(url: str | URL) -> str:
    """The URL as text with its password and every credential-bearing query parameter shown as ***.

    Every URL trueup shows (messages, plans, manifests, reports) goes through here."""
    if not isinstance(url, URL):
        try:
            url = make_url(url)
        except ArgumentError:
            return _redact_text(url)
    hidden = {name: _HIDDEN for name in url.query if _SECRET_PARAMETER.search(name)}
    return url.update_query_dict(hidden).render_as_string(hide_password=True).replace("%2A%2A%2A", _HIDDEN)


def _secrets(url: URL) -> list[str]:
    """The secret values in `url` (its password, credential-bearing query parameters), to keep out of messages."""
    values = [str(url.password)] if url.password else []
    for name, value in url.query.items():
        if _SECRET_PARAMETER.search(name):
            values.extend([value] if isinstance(value, str) else value)
    return [v for v in values if v]


def _redact_text(text: str) -> str:
    """Best effort for text that is not a URL at all: hide what follows `user:` and `secret=`."""
    text = re.sub(r"(://[^:/@]*:)[^/]*@", r"\1***@", text)
    return re.sub(rf"([?&][^=&]*(?:{_SECRET_PARAMETER.pattern})[^=&]*=)[^&]*", r"\1***", text, flags=re.I)


def open_engine(url: str, *, pool_size: int | None = None) -> Engine:
    """An engine for `url`, keeping up to `pool_size` idle connections (SQLAlchemy's default: 5); a missing
    driver or bad URL becomes a `TrueupError`."""
    parsed = parse_url(url)
    dialect = dialect_for_name(parsed.get_backend_name())
    options = dialect.engine_options(parsed) | ({"pool_size": pool_size} if pool_size else {})
    try:
        engine = sa.create_engine(parsed, **options)
    except NoSuchModuleError:
        raise ConfigError(f"unknown database kind in URL {redact(parsed)!r}") from None
    except ModuleNotFoundError as error:
        driver = parsed.get_driver_name()
        package = _DRIVER_PACKAGES.get(driver, error.name)
        raise DatabaseError(
            f"the {driver} driver for {parsed.get_backend_name()} is not installed: pip install '{package}'"
        ) from None
    dialect.configure(engine)
    return engine


@contextmanager
def connect(engine: Engine) -> Iterator[Connection]:
    """A connection; failure to connect names the host and port, never the password."""
    try:
        connection = engine.connect()
    except DBAPIError as error:
        raise UnreachableError(
            f"cannot connect to {describe(engine.url)}: {driver_message(error, engine.url)}"
        ) from None
    except TypeError as error:  # the driver does not take one of the URL's query parameters
        raise ConfigError(
            f"the database URL has a parameter the {engine.url.get_driver_name()} driver does not take: {error}"
        ) from None
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
    for secret in _secrets(url) if url is not None else ():
        text = text.replace(secret, _HIDDEN)
    return text


# -- identifiers (spelled as in the config: trueup.names) ----------------------------------------


def column_ref(preparer: Any, path: str) -> sa.ColumnElement[Any]:
    """A column reference (`column` or `qualifier.column`), each part quoted by the database's own
    rules, usable inside Core expressions without adding anything to FROM."""
    return sa.literal_column(".".join(quote_name(preparer, part) for part in split_name(path)))


def quote_name(preparer: Any, name: str) -> str:
    """`name` quoted by the database's rules, as it is written in SQL text. The preparer of a driver
    with `%s` parameters also doubles each `%` for the driver, and SQL text (`literal_column`,
    `text`) gets its `%` doubled again when compiled: undo the first doubling."""
    quoted = preparer.quote(name)
    if "%" in name and quoted.count("%") == 2 * name.count("%"):
        return quoted.replace("%%", "%")
    return quoted


def table_ref(path: str, *columns: str) -> sa.TableClause:
    """`schema.table` or `table` as a lightweight Core table, with `columns` for writes."""
    *schema, name = split_name(path)
    return sa.table(name, *[sa.column(c) for c in dict.fromkeys(columns)], schema=schema[0] if schema else None)


def coerce(value: Any, python_type: type | None) -> Any:
    """A key value read from text (CLI, JSON plan) as the column's Python type, so it binds correctly."""
    if value is None or python_type is None or isinstance(value, python_type):
        return value
    try:
        if python_type is uuid.UUID:
            return uuid.UUID(str(value))
        if python_type is datetime:
            return datetime.fromisoformat(str(value))
        if python_type is date:
            return date.fromisoformat(str(value))
        if python_type is Decimal:
            return Decimal(str(value))
        if python_type is int and isinstance(value, str):
            return int(value)
        if python_type is str:
            return str(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a valid {python_type.__name__}") from None
    return value


def user_sql(text: str) -> sa.TextClause:
    """The user's SQL as written (a `from` clause, a whole query); colons are escaped so `'10:00'`
    is not a bind parameter. Never a condition: filters go through `user_condition()`."""
    return sa.text(text.replace(":", r"\:"))


def user_condition(text: str) -> sa.ColumnElement[bool]:
    """The user's filter as one parenthesised expression, whatever it is joined to.

    The newline before the closing parenthesis keeps a trailing `-- comment` from swallowing it.
    """
    return user_sql(f"({text}\n)")  # type: ignore[return-value]


# -- dialects ----------------------------------------------------------------------------------

# trueup's own row ids: 64-bit (a capture guard queues a row for every guarded write, and a hook writes a
# round for every sale: 2^31 is months, not years), SQLite's INTEGER PRIMARY KEY (its rowid) there.
ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
STREAM_BATCH = 2000  # rows fetched per round trip when streaming
CHUNK = 500  # values per IN list, or rows per executemany, where each value is a bind parameter


@dataclass(frozen=True)
class Dialect:
    """Base behaviour (standard SQL); subclasses override what their database does differently."""

    name: str = "default"
    update_returning: bool = True  # UPDATE … RETURNING exists (not on MySQL/MariaDB)
    upsert_counts_rows: bool = True  # an upsert's rowcount is the rows written (MySQL counts an update twice)
    transactional_ddl: bool = True  # CREATE/DROP TABLE roll back with the transaction (MySQL commits around them)
    joins_comparison: bool = False  # check folds a unique-keyed rule by FULL JOIN, measured faster (query.comparison)
    retryable_codes: tuple[str, ...] = ()

    def engine_options(self, url: URL) -> dict[str, Any]:
        return {}

    def configure(self, engine: Engine) -> None:
        """Hook to install engine events."""

    def is_future(self, column: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
        """True where a timestamp column lies after the database's current time."""
        return column > sa.func.current_timestamp()

    def stream_options(self) -> dict[str, Any]:
        return {"stream_results": True, "yield_per": STREAM_BATCH}

    def stream(self, connection: Connection, statement: sa.Executable) -> Iterator[Sequence[Any]]:
        """The rows of `statement`, fetched a batch at a time so memory stays flat however many there are."""
        with connection.execute(statement, execution_options=self.stream_options()) as result:
            yield from result  # closed even when the caller stops early, so the connection is free again

    def time_bound(self, moment: datetime, like: str) -> Any:
        """A value to compare a time column with; `like` is a value read from that column, as text."""
        return moment

    def not_future(self, column: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
        """`column` is not after the database's now, in a form an index on it can serve."""
        return column <= sa.func.current_timestamp()

    def binds_arrays(self, sa_dialect: sa.Dialect) -> bool:
        """The driver binds a Python list as one array parameter that the database compares with `= ANY`."""
        return False

    def result_type(self, type_code: Any) -> tuple[str, bool] | None:
        """A result column's type from the driver's cursor description: (its name, whether it is a date
        or a time), or None when the driver does not say (SQLite: result columns carry no type)."""
        return None

    @contextmanager
    def write_transaction(self, connection: Connection, lock_timeout: float = 30) -> Iterator[Connection]:
        """A transaction for writing: READ COMMITTED, so each statement sees the latest commits."""
        _end_reads(connection)
        connection.execution_options(isolation_level="READ COMMITTED")  # sets the connection's level
        try:
            with connection.begin():
                self.set_lock_timeout(connection, lock_timeout)
                yield connection
        finally:
            connection.execution_options(isolation_level=connection.default_isolation_level)

    def set_lock_timeout(self, connection: Connection, seconds: float) -> None:
        pass

    def insert_rows(self, connection: Connection, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
        """Insert `rows` (dicts with the same keys, columns of `table`), a batch of them per executemany."""
        for start in range(0, len(rows), CHUNK):
            connection.execute(table.insert(), rows[start : start + CHUNK])

    def within(
        self, first: sa.ColumnElement[Any], second: sa.ColumnElement[Any], tolerance: Decimal
    ) -> sa.ColumnElement[bool]:
        """|first - second| <= tolerance, the tolerance bound as an exact decimal."""
        return sa.func.abs(first - second) <= sa.literal(tolerance, sa.Numeric)

    def json_array(self, *columns: sa.ColumnElement[Any]) -> sa.ColumnElement[str]:
        """A key's values as JSON text, e.g. `[42, "A-1"]`."""
        return sa.cast(sa.func.json_array(*columns), sa.Text)

    def row_json(self, table: sa.TableClause) -> sa.ColumnElement[str]:
        """A row of `table` as JSON text, `{"column": value, ...}`, every value exact (an audit row image)."""
        return sa.cast(sa.func.json_object(*_pairs(list(table.columns), self.json_value)), sa.Text)

    def json_value(self, column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        return column

    def number_text(self, column: sa.ColumnElement[Any]) -> sa.ColumnElement[str]:
        """A figure as text that reads back as exactly the same value."""
        return sa.cast(column, sa.Text)

    def copy_csv(self, connection: Connection, table: str, columns: Sequence[str], chunks: Iterator[bytes]) -> bool:
        """Bulk-load CSV chunks (no header; an unquoted empty field is NULL) into `table` (quoted), where
        the driver can stream them (PostgreSQL's COPY); False when it cannot and nothing was loaded."""
        return False

    def drop_temporary(self, name: str) -> str:
        """DROP for a temporary table that can never reach a real table of the same name."""
        return f"DROP TABLE IF EXISTS {name}"

    def nullable_copy(self, column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        """`column` for CREATE TABLE … AS SELECT, keeping its type but not its NOT NULL."""
        return column

    def analyze(self, connection: Connection, table: str, columns: Sequence[str] = ()) -> None:
        """Give the planner statistics for a table just filled with many rows (a work table, the history);
        `columns` (quoted) limits them to the columns joins and filters use."""

    def lock_rows(self, connection: Connection, query: sa.Select) -> None:
        """Take row locks on what `query` selects, held until the transaction ends."""
        for _ in connection.execute(query.with_for_update(), execution_options=self.stream_options()):
            pass

    def try_lock(self, connection: Connection, name: str) -> bool:
        """Take the named lock for this connection's session without waiting; False if another holds it."""
        raise NotImplementedError(f"no named locks on {self.name}")

    def unlock(self, connection: Connection, name: str) -> None:
        raise NotImplementedError(f"no named locks on {self.name}")

    def is_retryable(self, error: DBAPIError) -> bool:
        """A deadlock or serialization failure: the whole transaction may simply be run again."""
        orig = error.orig  # psycopg names the SQLSTATE; PyMySQL both the SQLSTATE and its own error number
        codes = {str(getattr(orig, "sqlstate", None)), str(orig.args[0]) if orig.args else ""}
        return not codes.isdisjoint(self.retryable_codes)

    def serialize_writers(self, engine: Engine) -> Engine:
        """`engine` for writers that serialise on row locks: READ COMMITTED, so each statement sees
        what the previous lock holder committed (MySQL's default REPEATABLE READ would not).

        Set once per connection as it opens: an isolation level in execution options would be set
        and reset on every checkout, two round trips per transaction."""

        @event.listens_for(engine, "connect")
        def _read_committed(dbapi_connection: Any, _record: Any) -> None:
            engine.dialect.set_isolation_level(dbapi_connection, "READ COMMITTED")

        return engine

    @contextmanager
    def pipeline(self, connection: Connection) -> Iterator[None]:
        """Statements inside are sent without waiting for each answer, where the driver can; their
        errors may then surface at the end of the block. Only for statements returning nothing."""
        yield

    def insert_ignore(self, table: sa.Table) -> sa.Insert:
        """INSERT that skips rows whose primary key already exists."""
        raise DatabaseError(f"{self.name} is not supported here (use SQLite, PostgreSQL or MySQL/MariaDB)")

    def upsert_add(self, table: sa.Table, keys: list[str], column: str, *, source: Source = None) -> sa.Insert:
        """INSERT of rows keyed by `keys` (VALUES, or `source`: the columns written and a SELECT of them);
        where the key exists, add the row's `column` to the stored one."""
        raise DatabaseError(f"{self.name} is not supported here (use SQLite, PostgreSQL or MySQL/MariaDB)")

    def next_id_value(self, sequence: sa.Sequence, table: sa.Table) -> sa.ColumnElement[int]:
        """An expression taking a new value of `sequence` (which numbers `table.c.id`)."""
        return sequence.next_value()

    def next_id(self, connection: Connection, sequence: sa.Sequence, table: sa.Table) -> int:
        """A new value of `sequence` (which numbers `table.c.id`)."""
        return connection.execute(_next_id_select(self, sequence, table)).scalar_one()

    @contextmanager
    def exclusive(self, connection: Connection, name: str) -> Iterator[None]:
        """Hold a database-wide lock called `name` (e.g. around migrations) inside a transaction."""
        raise DatabaseError(f"{self.name} is not supported here (use SQLite, PostgreSQL or MySQL/MariaDB)")
        yield


@dataclass(frozen=True)
class SQLiteDialect(Dialect):
    name: str = "sqlite"

    def engine_options(self, url: URL) -> dict[str, Any]:
        return {"connect_args": {"timeout": 30}}  # wait this long for another writer's lock

    def configure(self, engine: Engine) -> None:
        # sqlite3 cannot bind Decimal; its text keeps every digit, and a column of numeric
        # affinity stores it as a number (the adapter registry is global to the module).
        sqlite3.register_adapter(Decimal, str)

        # pysqlite's own transaction handling delays BEGIN; take it over, as SQLAlchemy's docs
        # recommend, so that writes can BEGIN IMMEDIATE and hold the write lock from the start.
        @event.listens_for(engine, "connect")
        def _autocommit_driver(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None

        @event.listens_for(engine, "begin")
        def _begin(connection: Connection) -> None:
            mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
            connection.exec_driver_sql(f"BEGIN {mode}")

    def is_future(self, column: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
        # SQLite stores times as text in several layouts; julianday() reads them all.
        return sa.func.julianday(column) > sa.func.julianday("now")

    def stream_options(self) -> dict[str, Any]:
        return {"yield_per": 2000}  # sqlite3 cursors already fetch lazily

    def time_bound(self, moment: datetime, like: str) -> Any:
        # SQLite compares stored times as text: write the bound in the column's own layout.
        return moment.isoformat(sep="T" if "T" in like else " ")

    def not_future(self, column: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
        return ~self.is_future(column)  # julianday() reads every layout SQLite stores times in

    def within(
        self, first: sa.ColumnElement[Any], second: sa.ColumnElement[Any], tolerance: Decimal
    ) -> sa.ColumnElement[bool]:
        # SQLite has no decimal type: its figures are doubles, and 10 - 9.999 is 0.0010000000000012;
        # the tolerance is widened by the rounding error of the figures it compares (a few units in
        # the last place of each), so a difference of exactly the tolerance in decimal is within it.
        # The bound text is CAST: SQLite never compares a number equal to text.
        slack = (sa.func.abs(first) + sa.func.abs(second)) * sa.literal(2.0**-50)
        return sa.func.abs(first - second) <= sa.cast(sa.literal(str(tolerance)), sa.REAL) + slack

    @contextmanager
    def write_transaction(self, connection: Connection, lock_timeout: float = 30) -> Iterator[Connection]:
        """BEGIN IMMEDIATE: no other writer can slip in between reading and writing."""
        _end_reads(connection)
        connection.exec_driver_sql(f"PRAGMA busy_timeout = {int(lock_timeout * 1000)}")
        connection.commit()
        connection.execution_options(sqlite_begin="IMMEDIATE")  # sets it on the connection itself
        try:
            with connection.begin():
                yield connection
        finally:
            connection.execution_options(sqlite_begin="DEFERRED")

    def is_retryable(self, error: DBAPIError) -> bool:
        return "database is locked" in str(error.orig)

    def drop_temporary(self, name: str) -> str:
        return f"DROP TABLE IF EXISTS temp.{name}"

    def json_value(self, column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        # json_object() prints a REAL with 15 digits; quote() prints as many as read back the same.
        numeric = sa.func.typeof(column).in_(["integer", "real"])
        return sa.func.json(sa.case((numeric, sa.func.quote(column)), else_=sa.func.json_quote(column)))

    def number_text(self, column: sa.ColumnElement[Any]) -> sa.ColumnElement[str]:
        return sa.case((sa.func.typeof(column) == "real", sa.func.quote(column)), else_=sa.cast(column, sa.Text))

    def try_lock(self, connection: Connection, name: str) -> bool:
        # SQLite has no session locks: a row in the database itself names its holder. A holder
        # whose process is gone from this host, or whose lease ran out, is presumed dead.
        _end_reads(connection)
        connection.exec_driver_sql(_SQLITE_LOCKS)
        connection.commit()
        with self.write_transaction(connection):
            held = connection.execute(
                sa.text("SELECT host, pid, expires_at FROM trueup_locks WHERE name = :name"), {"name": name}
            ).first()
            if held is not None and not _abandoned(*held):
                return False
            connection.execute(
                sa.text("INSERT OR REPLACE INTO trueup_locks VALUES (:name, :host, :pid, :expires)"),
                {"name": name, "host": socket.gethostname(), "pid": os.getpid(), "expires": time.time() + LOCK_LEASE},
            )
        return True

    def unlock(self, connection: Connection, name: str) -> None:
        with self.write_transaction(connection):
            connection.execute(
                sa.text("DELETE FROM trueup_locks WHERE name = :name AND host = :host AND pid = :pid"),
                {"name": name, "host": socket.gethostname(), "pid": os.getpid()},
            )

    def lock_rows(self, connection: Connection, query: sa.Select) -> None:
        pass  # BEGIN IMMEDIATE already holds the database's write lock

    def serialize_writers(self, engine: Engine) -> Engine:
        """Every transaction of `engine` starts with BEGIN IMMEDIATE (see `configure`): SQLite has one
        writer at a time, and taking the write lock up front means a read-then-write transaction never
        finds, too late, that another writer got in between. WAL lets readers go on meanwhile; with
        synchronous=NORMAL a commit does not wait for fsync: a crash of the program loses nothing, a
        power cut may lose the last commits but never leaves a half-written one."""

        @event.listens_for(engine, "connect")
        def _wal(dbapi_connection: Any, _record: Any) -> None:
            if engine.url.database not in (None, "", ":memory:"):
                dbapi_connection.execute("PRAGMA journal_mode = WAL")
                dbapi_connection.execute("PRAGMA synchronous = NORMAL")

        return engine.execution_options(sqlite_begin="IMMEDIATE")

    def insert_ignore(self, table: sa.Table) -> sa.Insert:
        return sqlite.insert(table).on_conflict_do_nothing()

    def upsert_add(self, table: sa.Table, keys: list[str], column: str, *, source: Source = None) -> sa.Insert:
        return _on_conflict_add(_insert(sqlite.insert(table), source), table, keys, column)

    def next_id_value(self, sequence: sa.Sequence, table: sa.Table) -> sa.ColumnElement[int]:
        # No sequences in SQLite; safe because the caller holds the database's write lock.
        return sa.select(sa.func.coalesce(sa.func.max(table.c.id), 0) + 1).scalar_subquery()

    @contextmanager
    def exclusive(self, connection: Connection, name: str) -> Iterator[None]:
        yield  # BEGIN IMMEDIATE already excludes every other writer


@dataclass(frozen=True)
class PostgreSQLDialect(Dialect):
    name: str = "postgresql"
    joins_comparison: bool = True
    retryable_codes: tuple[str, ...] = ("40001", "40P01")  # serialization failure, deadlock

    def result_type(self, type_code: Any) -> tuple[str, bool] | None:
        from psycopg.postgres import types  # the built-in types by OID

        info = types.get(type_code) if isinstance(type_code, int) else None
        return None if info is None else (info.name, info.name in ("timestamp", "timestamptz", "date"))

    def binds_arrays(self, sa_dialect: sa.Dialect) -> bool:
        # psycopg 3 sends a list as an array of its values' type (uuid[], bigint[]), or, for text, of
        # unknown type that the comparison types like the column: an index on the column serves it.
        return sa_dialect.driver == "psycopg"

    def set_lock_timeout(self, connection: Connection, seconds: float) -> None:
        settings = {"lock_timeout": f"{int(seconds * 1000)}", "work_mem": WORK_MEM}
        calls = [sa.func.set_config(name, value, sa.true()) for name, value in settings.items()]
        connection.execute(sa.select(*calls))  # for this transaction only, in one round trip

    def insert_rows(self, connection: Connection, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
        # One INSERT … SELECT unnest(array), … (an array a column): psycopg's executemany would have
        # the server run the INSERT once a row.
        if not rows or not self.binds_arrays(connection.dialect):
            super().insert_rows(connection, table, rows)
            return
        columns = [table.c[name] for name in rows[0]]
        arrays = [
            sa.func.unnest(sa.bindparam(None, [row[c.name] for row in rows], type_=postgresql.ARRAY(c.type)))
            for c in columns
        ]
        connection.execute(table.insert().from_select([c.name for c in columns], sa.select(*arrays)))

    def analyze(self, connection: Connection, table: str, columns: Sequence[str] = ()) -> None:
        # PostgreSQL never analyzes temporary tables by itself; without statistics it
        # plans the joins against a 100,000-key work table as if it held a few rows.
        connection.exec_driver_sql(f"ANALYZE {table}" + (f" ({', '.join(columns)})" if columns else ""))

    def lock_rows(self, connection: Connection, query: sa.Select) -> None:
        # Lock inside a subquery and count, so the locked rows never travel to the client.
        locked = query.with_for_update().subquery("locked")
        connection.execute(sa.select(sa.func.count()).select_from(locked)).scalar_one()

    def json_array(self, *columns: sa.ColumnElement[Any]) -> sa.ColumnElement[str]:
        return sa.cast(sa.func.json_build_array(*columns), sa.Text)

    def drop_temporary(self, name: str) -> str:
        return f"DROP TABLE IF EXISTS pg_temp.{name}"

    def row_json(self, table: sa.TableClause) -> sa.ColumnElement[str]:
        return sa.cast(sa.func.row_to_json(table.table_valued()), sa.Text)  # the whole row: a third faster

    def copy_csv(self, connection: Connection, table: str, columns: Sequence[str], chunks: Iterator[bytes]) -> bool:
        if connection.dialect.driver != "psycopg":
            return False
        prep = connection.dialect.identifier_preparer
        names = ", ".join(prep.quote(c) for c in columns)
        cursor = connection.connection.driver_connection.cursor()
        with cursor.copy(f"COPY {table} ({names}) FROM STDIN (FORMAT csv)") as copy:
            for chunk in chunks:
                copy.write(chunk)
        return True

    @contextmanager
    def pipeline(self, connection: Connection) -> Iterator[None]:
        # psycopg 3's pipeline mode: the statements go out together and one sync collects the
        # answers. An error then comes from the driver at the sync, outside SQLAlchemy: wrap it as
        # SQLAlchemy would have.
        if connection.dialect.driver != "psycopg":
            yield
            return
        psycopg = connection.dialect.loaded_dbapi
        try:
            with connection.connection.driver_connection.pipeline():
                yield
        except psycopg.Error as error:
            raise DBAPIError.instance("(pipeline)", None, error, psycopg.Error) from error

    def insert_ignore(self, table: sa.Table) -> sa.Insert:
        return postgresql.insert(table).on_conflict_do_nothing()

    def upsert_add(self, table: sa.Table, keys: list[str], column: str, *, source: Source = None) -> sa.Insert:
        return _on_conflict_add(_insert(postgresql.insert(table), source), table, keys, column)

    @contextmanager
    def exclusive(self, connection: Connection, name: str) -> Iterator[None]:
        connection.execute(sa.select(sa.func.pg_advisory_xact_lock(_lock_key(name))))
        yield  # released when the transaction ends

    def try_lock(self, connection: Connection, name: str) -> bool:
        # A session-level advisory lock: the server releases it if our session dies.
        query = sa.text("SELECT pg_try_advisory_lock(:key)")
        got = bool(connection.execute(query, {"key": _lock_key(name)}).scalar_one())
        connection.commit()
        return got

    def unlock(self, connection: Connection, name: str) -> None:
        connection.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": _lock_key(name)})
        connection.commit()

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
    update_returning: bool = False
    upsert_counts_rows: bool = False
    transactional_ddl: bool = False
    retryable_codes: tuple[str, ...] = ("1213", "40001")  # deadlock: error number, SQLSTATE

    def result_type(self, type_code: Any) -> tuple[str, bool] | None:
        from pymysql.constants import FIELD_TYPE  # the protocol's numbers, the same for every MySQL driver

        names = {code: name.lower() for name, code in vars(FIELD_TYPE).items() if name.isupper()}
        if type_code not in names:
            return None
        moments = (FIELD_TYPE.DATE, FIELD_TYPE.DATETIME, FIELD_TYPE.TIMESTAMP, FIELD_TYPE.NEWDATE)
        return names[type_code].replace("var_string", "varchar"), type_code in moments

    def set_lock_timeout(self, connection: Connection, seconds: float) -> None:
        connection.execute(sa.text("SET SESSION innodb_lock_wait_timeout = :s"), {"s": max(1, int(seconds))})

    def drop_temporary(self, name: str) -> str:
        return f"DROP TEMPORARY TABLE IF EXISTS {name}"

    def try_lock(self, connection: Connection, name: str) -> bool:
        # GET_LOCK is held by the session; the server releases it if our session dies.
        got = connection.execute(sa.text("SELECT GET_LOCK(:name, 0)"), {"name": _lock_name(name)}).scalar_one()
        connection.commit()
        return got == 1

    def unlock(self, connection: Connection, name: str) -> None:
        connection.execute(sa.text("SELECT RELEASE_LOCK(:name)"), {"name": _lock_name(name)})
        connection.commit()

    def nullable_copy(self, column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        return sa.case((sa.literal_column("1") == sa.literal_column("0"), sa.null()), else_=column)

    def insert_ignore(self, table: sa.Table) -> sa.Insert:
        insert = mysql.insert(table)  # a no-op update, since INSERT IGNORE would also hide real errors
        first = table.primary_key.columns[0]
        return insert.on_duplicate_key_update({first.name: first})

    def upsert_add(self, table: sa.Table, keys: list[str], column: str, *, source: Source = None) -> sa.Insert:
        insert = _insert(mysql.insert(table), source)
        return insert.on_duplicate_key_update({column: table.c[column] + insert.inserted[column]})

    @contextmanager
    def exclusive(self, connection: Connection, name: str) -> Iterator[None]:
        # GET_LOCK belongs to the session, not the transaction, so it is released explicitly.
        key = _lock_name(name)
        if connection.execute(sa.select(sa.func.get_lock(key, 60))).scalar() != 1:
            raise DatabaseError(f"another process held the lock {name!r} for over 60 s; try again")
        try:
            yield
        finally:
            connection.execute(sa.select(sa.func.release_lock(key)))


LOCK_LEASE = 15 * 60  # seconds a SQLite lock row stays valid, should its holder vanish from another host
_SQLITE_LOCKS = (
    "CREATE TABLE IF NOT EXISTS trueup_locks (name TEXT PRIMARY KEY, host TEXT, pid INTEGER, expires_at REAL)"
)


def _abandoned(host: str, pid: int, expires_at: float) -> bool:
    if expires_at < time.time():
        return True
    if host != socket.gethostname():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _lock_key(name: str) -> int:
    """A stable signed 64-bit key for PostgreSQL's advisory locks."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def _lock_name(name: str) -> str:
    """MySQL lock names are at most 64 characters."""
    return name if len(name) <= 64 else f"trueup:{hashlib.sha256(name.encode()).hexdigest()[:56]}"


def _pairs(columns: Sequence[sa.ColumnElement[Any]], value: Any) -> list[Any]:
    """`name, value, name, value, …` for a JSON object of `columns`."""
    return [part for column in columns for part in (sa.cast(sa.literal(column.name), sa.Text), value(column))]


def _end_reads(connection: Connection) -> None:
    """End the transaction SQLAlchemy began implicitly for earlier reads, before writing."""
    if connection.in_transaction():
        connection.commit()


@functools.cache
def _next_id_select(dialect: Dialect, sequence: sa.Sequence, table: sa.Table) -> sa.Select[tuple[int]]:
    """`SELECT <next id>`, built once: building a Core expression costs more than SQLite takes to run it."""
    return sa.select(dialect.next_id_value(sequence, table))


def _insert(insert: Any, source: Source) -> Any:
    return insert if source is None else insert.from_select(*source)


def _on_conflict_add(insert: Any, table: sa.Table, keys: list[str], column: str) -> sa.Insert:
    """INSERT ... ON CONFLICT (keys) DO UPDATE SET column = column + excluded.column (SQLite, PostgreSQL)."""
    return insert.on_conflict_do_update(index_elements=keys, set_={column: table.c[column] + insert.excluded[column]})


_DIALECTS: dict[str, Dialect] = {
    "sqlite": SQLiteDialect(),
    "postgresql": PostgreSQLDialect(),
    "mysql": MySQLDialect(),
    "mariadb": MySQLDialect(name="mariadb"),
}


def is_in(sa_dialect: sa.Dialect, column: sa.ColumnElement[Any], values: Sequence[Any]) -> sa.ColumnElement[bool]:
    """`column` is one of `values` (plain values): `= ANY` of one array parameter where the driver binds
    arrays, so the statement is the same text for any number of values (SQLAlchemy and psycopg reuse
    what they made of it; rendering and parsing 1,000 placeholders cost more than running the query),
    else `IN` with a parameter a value (as for values of mixed types, which an array cannot hold)."""
    if _as_array(sa_dialect, values):
        return column == sa.any_(sa.bindparam(None, list(values)))
    return column.in_(values)


def in_chunks(
    sa_dialect: sa.Dialect, column: sa.ColumnElement[Any], values: Sequence[Any]
) -> list[sa.ColumnElement[bool]]:
    """`is_in` conditions covering `values`: one where the driver binds arrays, else one per `CHUNK` values
    (databases limit bind parameters per statement)."""
    size = max(len(values), 1) if _as_array(sa_dialect, values) else CHUNK
    return [is_in(sa_dialect, column, values[start : start + size]) for start in range(0, len(values), size)]


def _as_array(sa_dialect: sa.Dialect, values: Sequence[Any]) -> bool:
    """`values` go as one array parameter: the driver binds arrays, and they are of one type."""
    alike = len({type(value) for value in values if value is not None}) <= 1
    return alike and dialect_for_name(sa_dialect.name).binds_arrays(sa_dialect)


def dialect_for_name(backend: str) -> Dialect:
    return _DIALECTS.get(backend, Dialect(name=backend))


def create_missing(connection: Connection, metadata: sa.MetaData) -> None:
    """Create `metadata`'s tables that do not exist yet, in a (writing) transaction of their own."""
    dialect = dialect_for(connection)
    try:
        with dialect.write_transaction(connection):
            metadata.create_all(connection, checkfirst=True)
    except DBAPIError:  # another process created them at the same moment
        with dialect.write_transaction(connection):
            metadata.create_all(connection, checkfirst=True)


def add_missing_columns(connection: Connection, table: sa.Table) -> None:
    """Add the columns of `table` that its copy in the database lacks (one made by an older trueup).

    Only for nullable columns added in a later version: an additive upgrade, no data to move.
    """
    missing = _missing_columns(connection, table)
    if not missing:
        return
    prep = connection.dialect.identifier_preparer
    try:
        with dialect_for(connection).write_transaction(connection):
            for column in missing:
                kind = column.type.compile(dialect=connection.dialect)
                connection.exec_driver_sql(
                    f"ALTER TABLE {prep.format_table(table)} ADD COLUMN {prep.format_column(column)} {kind}"
                )
    except DBAPIError:  # another process added them at the same moment
        if _missing_columns(connection, table):
            raise


def _missing_columns(connection: Connection, table: sa.Table) -> list[sa.Column[Any]]:
    present = {c["name"] for c in sa.inspect(connection).get_columns(table.name)}
    if connection.in_transaction():
        connection.commit()
    return [column for column in table.columns if column.name not in present]


def dialect_for(bind: Engine | Connection) -> Dialect:
    return dialect_for_name(bind.dialect.name)
