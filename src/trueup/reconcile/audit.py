"""The audit trail: `trueup_runs` and `trueup_changes`, in the target database itself.

A run (an apply or an undo) and the row images it wrote are inserted in the
same transaction as the writes, so the audit can never disagree with the
data: either both committed or neither did. Each change holds the key (JSON),
the quantity before and after (as exact decimal text) and, for rows a run
inserted or deleted, the whole row (JSON), which is what makes every run
exactly undoable, undos included.

The tables are created on first use, before the writing transaction begins
(MySQL commits implicitly around DDL).

The changes are written by `trueup.reconcile.images`.
"""

from __future__ import annotations

import getpass
import json
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from trueup import __version__
from trueup.db import ROW_ID, create_missing
from trueup.errors import NotFoundError

metadata = sa.MetaData()

runs = sa.Table(
    "trueup_runs",
    metadata,
    sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(16), nullable=False),  # apply | undo
    sa.Column("rule", sa.Text, nullable=False),  # the rule names, comma-separated
    sa.Column("started_at", sa.DateTime, nullable=False),
    sa.Column("finished_at", sa.DateTime),
    sa.Column("os_user", sa.String(128)),
    sa.Column("host", sa.String(255)),
    sa.Column("triggered_by", sa.String(64), nullable=False),
    sa.Column("config_sha256", sa.String(64)),
    sa.Column("plan_sha256", sa.String(64)),
    sa.Column("updated", sa.Integer, nullable=False, default=0),
    sa.Column("inserted", sa.Integer, nullable=False, default=0),
    sa.Column("deleted", sa.Integer, nullable=False, default=0),
    sa.Column("conflicts", sa.Integer, nullable=False, default=0),
    sa.Column("status", sa.String(16), nullable=False),  # applied | verified | residual | undone
    sa.Column("residual", sa.Text),  # Σ |drift| left on the applied keys after commit
    sa.Column("undoes_run", ROW_ID),
    sa.Column("undone_by", ROW_ID),
    sa.Column("tool_version", sa.String(32)),
)

changes = sa.Table(
    "trueup_changes",
    metadata,
    sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
    sa.Column("run_id", ROW_ID, nullable=False, index=True),
    sa.Column("rule", sa.String(128), nullable=False),
    sa.Column("table_name", sa.String(255), nullable=False),
    sa.Column("key_columns", sa.Text, nullable=False),  # JSON list of column names
    sa.Column("quantity_column", sa.String(255), nullable=False),
    sa.Column("key", sa.Text, nullable=False),  # JSON list of values, in key_columns order
    sa.Column("op", sa.String(8), nullable=False),  # update | insert | delete
    sa.Column("before_value", sa.Text),
    sa.Column("after_value", sa.Text),
    sa.Column("row_image", sa.Text),  # JSON of the whole row, for inserted and deleted rows
)

# A chunked apply (`apply --chunk-size N`): its options, and its key-ordered chunks, each marked when its
# transaction commits, so `apply --resume RUN` knows exactly which chunks are left.
chunked_runs = sa.Table(
    "trueup_chunked_runs",
    metadata,
    sa.Column("run_id", ROW_ID, primary_key=True, autoincrement=False),
    sa.Column("chunk_size", sa.Integer, nullable=False),
    sa.Column("options", sa.Text, nullable=False),  # JSON: the scope's keys and where, include_flagged
)

chunks = sa.Table(
    "trueup_chunks",
    metadata,
    sa.Column("run_id", ROW_ID, primary_key=True, autoincrement=False),
    sa.Column("number", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("rule", sa.String(128), nullable=False),
    sa.Column("first_key", sa.Text, nullable=False),  # JSON list of values; the chunk is first..last, inclusive
    sa.Column("last_key", sa.Text, nullable=False),
    sa.Column("committed_at", sa.DateTime),
)


class Chunk(NamedTuple):
    number: int
    rule: str
    first: tuple[Any, ...]
    last: tuple[Any, ...]


class Run(NamedTuple):
    id: int
    kind: str
    rule: str
    started_at: datetime
    finished_at: datetime | None
    os_user: str | None
    host: str | None
    triggered_by: str
    config_sha256: str | None
    plan_sha256: str | None
    updated: int
    inserted: int
    deleted: int
    conflicts: int
    status: str
    residual: str | None
    undoes_run: int | None
    undone_by: int | None
    tool_version: str | None

    @property
    def changed(self) -> int:
        return self.updated + self.inserted + self.deleted


class Change(NamedTuple):
    rule: str
    table_name: str
    key_columns: tuple[str, ...]
    quantity_column: str
    key: tuple[Any, ...]
    op: str
    before: Decimal | None
    after: Decimal | None
    row_image: dict[str, Any] | None


def ensure_tables(connection: Connection) -> None:
    """Create the audit tables if they are missing, in a (writing) transaction of their own."""
    create_missing(connection, metadata)


def start_run(connection: Connection, *, kind: str, rule: str, triggered_by: str, **fields: Any) -> int:
    """Insert the run row inside the writing transaction; return its id."""
    result = connection.execute(
        runs.insert().values(
            kind=kind,
            rule=rule,
            started_at=now(),
            os_user=_ACTOR.get() or _os_user(),
            host=socket.gethostname(),
            triggered_by=triggered_by,
            status="applying",
            tool_version=__version__,
            updated=0,
            inserted=0,
            deleted=0,
            conflicts=0,
            **fields,
        )
    )
    return int(result.inserted_primary_key[0])


def finish_run(connection: Connection, run_id: int, **fields: Any) -> None:
    connection.execute(runs.update().where(runs.c.id == run_id).values(finished_at=now(), **fields))


def set_status(connection: Connection, run_id: int, **fields: Any) -> None:
    connection.execute(runs.update().where(runs.c.id == run_id).values(**fields))


def record_chunks(connection: Connection, run_id: int, chunk_size: int, options: str, planned: list[Chunk]) -> None:
    """A chunked run's options and chunks, written with its run row before any chunk is applied."""
    connection.execute(chunked_runs.insert().values(run_id=run_id, chunk_size=chunk_size, options=options))
    rows = [
        {"run_id": run_id, "number": c.number, "rule": c.rule, "first_key": _key(c.first), "last_key": _key(c.last)}
        for c in planned
    ]
    if rows:
        connection.execute(chunks.insert(), rows)


def commit_chunk(connection: Connection, run_id: int, number: int, **counts: int) -> None:
    """Mark a chunk done (inside its own transaction) and add what it wrote to the run's counts."""
    connection.execute(
        chunks.update().where(chunks.c.run_id == run_id, chunks.c.number == number).values(committed_at=now())
    )
    added = {name: runs.c[name] + value for name, value in counts.items()}
    connection.execute(runs.update().where(runs.c.id == run_id).values(**added))


def chunked_options(connection: Connection, run_id: int) -> tuple[int, dict[str, Any]] | None:
    """The chunk size and options of a chunked run; None for any other run."""
    if not sa.inspect(connection).has_table(chunked_runs.name):
        return None
    row = connection.execute(sa.select(chunked_runs).where(chunked_runs.c.run_id == run_id)).first()
    return None if row is None else (row.chunk_size, json.loads(row.options))


def pending_chunks(connection: Connection, run_id: int) -> tuple[list[Chunk], int]:
    """The chunks of a run whose transaction has not committed, in order (keys as JSON gives them back); and
    how many chunks the run has."""
    mine = chunks.c.run_id == run_id
    query = sa.select(chunks).where(mine, chunks.c.committed_at.is_(None)).order_by(chunks.c.number)
    pending = [
        Chunk(row.number, row.rule, tuple(json.loads(row.first_key)), tuple(json.loads(row.last_key)))
        for row in connection.execute(query)
    ]
    return pending, connection.execute(sa.select(sa.func.count()).where(mine)).scalar_one()


def _key(key: tuple[Any, ...]) -> str:
    return json.dumps(list(key), default=str)


def creates_table(connection: Connection, table: str) -> bool:
    """A run that was not undone records creating `table`."""
    created = (
        sa.select(sa.literal(1))
        .select_from(changes.join(runs, runs.c.id == changes.c.run_id))
        .where(changes.c.table_name == table, changes.c.op == "create", runs.c.undone_by.is_(None))
    )
    return connection.execute(created.exists().select()).scalar_one()


def list_runs(connection: Connection, limit: int = 20) -> list[Run]:
    if not _exists(connection):
        return []
    query = sa.select(runs).order_by(runs.c.id.desc()).limit(limit)
    return [Run(*row) for row in connection.execute(query)]


def applied_plan(connection: Connection, plan_sha256: str) -> int | None:
    """The run that applied the saved plan with this sha256 and still stands (not undone), if any."""
    if not _exists(connection):
        return None
    query = sa.select(sa.func.max(runs.c.id)).where(
        runs.c.kind == "apply", runs.c.plan_sha256 == plan_sha256, runs.c.undone_by.is_(None)
    )
    return connection.execute(query).scalar()


def get_run(connection: Connection, run_id: int) -> Run:
    row = connection.execute(sa.select(runs).where(runs.c.id == run_id)).first() if _exists(connection) else None
    if row is None:
        raise NotFoundError(f"no run {run_id} in this database (trueup runs lists them)")
    return Run(*row)


def run_changes(connection: Connection, run_id: int, limit: int | None = None, offset: int = 0) -> list[Change]:
    query = sa.select(changes).where(changes.c.run_id == run_id).order_by(changes.c.id).offset(offset or None)
    if limit is not None:
        query = query.limit(limit)
    return [_change(row) for row in connection.execute(query)]


def _change(row: Any) -> Change:
    def number(text: str | None) -> Decimal | None:
        return None if text is None else Decimal(text)

    return Change(
        row.rule,
        row.table_name,
        tuple(json.loads(row.key_columns)),
        row.quantity_column,
        tuple(json.loads(row.key, parse_float=Decimal)),
        row.op,
        number(row.before_value),
        number(row.after_value),
        json.loads(row.row_image, parse_float=Decimal) if row.row_image else None,
    )


def now() -> datetime:
    """UTC, without tzinfo: every database stores it the same way."""
    return datetime.now(UTC).replace(tzinfo=None)


_ACTOR: ContextVar[str | None] = ContextVar("trueup_actor", default=None)


@contextmanager
def acting_as(name: str) -> Iterator[None]:
    """Runs started inside record `name` as who did them (the service: the token's name), not the OS user."""
    reset = _ACTOR.set(name)
    try:
        yield
    finally:
        _ACTOR.reset(reset)


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _exists(connection: Connection) -> bool:
    return sa.inspect(connection).has_table(runs.name)
