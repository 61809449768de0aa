"""Rules -> trigger DDL: what each table's triggers must queue (plain data), rendered per dialect.

A rule reads its recorded table and each `table` source. For each, `watched()`
lists the key columns (in recorded-key order) and the columns the rule reads;
`marks()` says, per event, which row images to queue and when:

| event  | queues                                                                          |
| ------ | ------------------------------------------------------------------------------- |
| INSERT | the new row's key                                                               |
| DELETE | the old row's key                                                               |
| UPDATE | the old key when a read column changed; the new key too when the key changed    |

A table with a `where` reads columns we cannot name (the fragment is the
user's SQL), so any update to it queues the old key. The key is written as a
JSON array, as `trueup.reconcile.queue` holds keys; rounds decode and type it.
Every identifier is quoted by the dialect's preparer, every value is rendered
by SQLAlchemy as a literal (DDL takes no parameters).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from trueup.config import Rule
from trueup.db import dialect_for_name, quote_name
from trueup.errors import ConfigError, UsageError
from trueup.names import join_name, split_name

EVENTS = ("insert", "update", "delete")
QUEUE = "trueup_dirty"
TOUCHED = "trueup_touched"  # alarm, enforce: the keys a transaction touched (see trueup.guard.commit)
MODES = ("capture", "alarm", "enforce")


@dataclass(frozen=True)
class Watched:
    """One table a rule reads: its key columns (recorded-key order) and the columns read (None: unknown)."""

    table: str
    key: tuple[str, ...]
    read: tuple[str, ...] | None


@dataclass(frozen=True)
class Mark:
    """Queue the key of the `row` image ("OLD" or "NEW") when any of `changed` differs (empty: always)."""

    row: str
    changed: tuple[str, ...] = ()


@dataclass(frozen=True)
class Trigger:
    name: str
    table: str
    event: str
    create: tuple[str, ...]  # the statements that install it
    drop: tuple[str, ...]  # the statements that remove it (IF EXISTS: safe after a killed install)


def watched(rule: Rule, label: str = "config", mode: str = "capture") -> list[Watched]:
    """The tables a (resolved) rule reads; ConfigError for a `from` source, whose rows we cannot map to keys."""
    recorded = rule.recorded
    read = None if recorded.where else (*recorded.key, recorded.quantity)
    found = [Watched(recorded.table, tuple(recorded.key), _bare(read))]
    for index, source in enumerate(rule.expected):
        if source.table is None:
            raise ConfigError(
                f"{label}: rule {rule.name!r}: expected[{index}]: guard {mode} needs a `table` source; "
                "a `from` clause's rows cannot be mapped to the rule's key by a trigger"
            )
        columns = [*source.key, *([source.quantity] if isinstance(source.quantity, str) else [])]
        found.append(Watched(source.table, _bare(source.key) or (), None if source.where else _bare(columns)))
    return _merged(found)


def marks(table: Watched, event: str) -> list[Mark]:
    if event == "insert":
        return [Mark("NEW")]
    if event == "delete":
        return [Mark("OLD")]
    old = Mark("OLD") if table.read is None else Mark("OLD", table.read)
    return [old, Mark("NEW", table.key)]


def check_mode(backend: str, mode: str) -> None:
    """Refuse a mode this database or this version cannot install."""
    if mode not in MODES:
        raise UsageError(f"--mode {mode!r}: choose one of {', '.join(MODES)}")
    if mode == "capture":
        return
    if backend == "postgresql":
        return
    raise UsageError(
        f"--mode {mode} needs deferred constraint triggers (a check at commit), which {backend} does not have; "
        "on this database only --mode capture works (alarm and enforce: PostgreSQL)"
    )


def triggers(
    rule: Rule, backend: str, schema: str | None, label: str = "config", mode: str = "capture"
) -> list[Trigger]:
    """The row triggers for `rule` on a database of `backend` (its queue in `schema`, if given): under
    capture they queue touched keys in `trueup_dirty`; under alarm and enforce (PostgreSQL) they note
    them, once per transaction, in `trueup_touched` for the check at commit (`trueup.guard.commit`)."""
    render = _RENDERERS.get(backend)
    if render is None:
        raise UsageError(f"guard: {backend} is not supported; capture works on SQLite, PostgreSQL and MySQL/MariaDB")
    return [
        render.trigger(rule.name, f"{stem(rule.name)}_{index}_{event[0]}", table, event, schema, mode)
        for index, table in enumerate(watched(rule, label, mode))
        for event in EVENTS
    ]


def ddl_sha256(found: Sequence[Trigger]) -> str:
    return hashlib.sha256("\n".join(s for t in found for s in t.create).encode()).hexdigest()


def _bare(columns: Sequence[str] | None) -> tuple[str, ...] | None:
    return None if columns is None else tuple(dict.fromkeys(split_name(c)[-1] for c in columns))


def _merged(found: list[Watched]) -> list[Watched]:
    """One entry per table: a table read twice (two sources, or a source and the recorded table) with
    the same key reads the union of the columns."""
    merged: dict[tuple[str, tuple[str, ...]], Watched] = {}
    for w in found:
        seen = merged.get((w.table, w.key))
        if seen is not None:
            read = None if seen.read is None or w.read is None else tuple(dict.fromkeys((*seen.read, *w.read)))
            w = Watched(w.table, w.key, read)
        merged[(w.table, w.key)] = w
    return list(merged.values())


def stem(rule: str) -> str:
    """`trueup_<rule>_<hash>`, short enough for MySQL's 64 and PostgreSQL's 63 characters with a suffix."""
    slug = re.sub(r"[^A-Za-z0-9_]", "_", rule)[:28]
    return f"trueup_{slug}_{hashlib.sha256(rule.encode()).hexdigest()[:6]}"


class _Renderer:
    """Shared rendering: the queue INSERT for one mark, identifiers quoted, values as literals."""

    backend = ""
    distinct = "{old} IS DISTINCT FROM {new}"  # a read column changed between the row images
    now = ""  # the current UTC time, as the queue's `queued_at` holds it

    def __init__(self) -> None:
        self.dialect = _dialects()[self.backend]
        self.prep = self.dialect.identifier_preparer

    def trigger(self, rule: str, name: str, table: Watched, event: str, schema: str | None, mode: str) -> Trigger:
        raise NotImplementedError

    def q(self, name: str) -> str:
        return quote_name(self.prep, name)

    def table(self, path: str) -> str:
        return ".".join(self.q(p) for p in split_name(path))

    def literal(self, value: Any) -> str:
        return str(sa.literal(value).compile(dialect=self.dialect, compile_kwargs={"literal_binds": True}))

    def insert(self, rule: str, row: str, key: Sequence[str], schema: str | None, mode: str = "capture") -> str:
        values = [f"{row}.{self.q(c)}" for c in key]
        json = dialect_for_name(self.backend).json_array(*[sa.literal_column(v) for v in values])
        rendered = str(json.compile(dialect=self.dialect, compile_kwargs={"literal_binds": True}))
        if mode != "capture":  # alarm, enforce: note the key once per transaction for the check at commit
            touched = self.table(join_name([schema, TOUCHED]) if schema else TOUCHED)
            return (
                f"INSERT INTO {touched} ({self.q('txid')}, {self.q('rule')}, {self.q('key')}) "
                f"VALUES (txid_current(), {self.literal(rule)}, {rendered}) ON CONFLICT DO NOTHING"
            )
        queue = self.table(join_name([schema, QUEUE]) if schema else QUEUE)
        return (
            f"INSERT INTO {queue} ({self.q('rule')}, {self.q('key')}, {self.q('queued_at')}, {self.q('queued_by')}) "
            f"VALUES ({self.literal(rule)}, {rendered}, {self.now}, {self.literal('guard:capture')})"
        )

    def block(self, rule: str, mark: Mark, key: Sequence[str], schema: str | None, mode: str = "capture") -> str:
        """The mark as a statement of a procedural body (MySQL, PL/pgSQL)."""
        insert = self.insert(rule, mark.row, key, schema, mode)
        return f"IF {self.changed(mark.changed)} THEN {insert}; END IF;" if mark.changed else f"{insert};"

    def changed(self, columns: Sequence[str]) -> str:
        return " OR ".join(self.distinct.format(old=f"OLD.{self.q(c)}", new=f"NEW.{self.q(c)}") for c in columns)


class _SQLite(_Renderer):
    """One SQLite trigger per mark: SQLite's WHEN applies to a whole trigger."""

    backend = "sqlite"
    distinct = "{old} IS NOT {new}"
    now = "datetime('now')"

    def trigger(self, rule: str, name: str, table: Watched, event: str, schema: str | None, mode: str) -> Trigger:
        create, drop = [], []
        for index, mark in enumerate(marks(table, event)):
            trigger = self.q(f"{name}{index}")
            when = f" WHEN {self.changed(mark.changed)}" if mark.changed else ""
            create.append(
                f"CREATE TRIGGER {trigger} AFTER {event.upper()} ON {self.table(table.table)} FOR EACH ROW{when} "
                f"BEGIN {self.insert(rule, mark.row, table.key, None)}; END"
            )
            drop.append(f"DROP TRIGGER IF EXISTS {trigger}")
        return Trigger(name, table.table, event, tuple(create), tuple(drop))


class _MySQL(_Renderer):
    """One MySQL trigger per event, its marks as IF blocks (MySQL triggers have no WHEN)."""

    backend = "mysql"
    distinct = "NOT ({old} <=> {new})"
    now = "UTC_TIMESTAMP()"

    def trigger(self, rule: str, name: str, table: Watched, event: str, schema: str | None, mode: str) -> Trigger:
        body = " ".join(self.block(rule, mark, table.key, None) for mark in marks(table, event))
        on = self.table(table.table)
        create = f"CREATE TRIGGER {self.q(name)} AFTER {event.upper()} ON {on} FOR EACH ROW BEGIN {body} END"
        return Trigger(name, table.table, event, (create,), (f"DROP TRIGGER IF EXISTS {self.q(name)}",))


class _PostgreSQL(_Renderer):
    """A PL/pgSQL function per trigger, its marks as IF blocks; the queue named with its schema, so a
    session with another search_path still queues into it. The function runs as its owner (SECURITY
    DEFINER, with a fixed search_path), as MySQL's triggers run as their definer: an application
    role that may not write `trueup_dirty` still commits its writes."""

    backend = "postgresql"
    now = "(now() AT TIME ZONE 'UTC')"

    def trigger(self, rule: str, name: str, table: Watched, event: str, schema: str | None, mode: str) -> Trigger:
        body = " ".join(self.block(rule, mark, table.key, schema, mode) for mark in marks(table, event))
        function = self.table(join_name([schema, name]) if schema else name)
        on = self.table(table.table)
        create = (
            f"CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql "
            "SECURITY DEFINER SET search_path = pg_catalog, pg_temp "
            f"AS $trueup$ BEGIN {body} RETURN NULL; END $trueup$",
            f"CREATE TRIGGER {self.q(name)} AFTER {event.upper()} ON {on} FOR EACH ROW EXECUTE FUNCTION {function}()",
        )
        drop = (f"DROP TRIGGER IF EXISTS {self.q(name)} ON {on}", f"DROP FUNCTION IF EXISTS {function}()")
        return Trigger(name, table.table, event, create, drop)


def _dialects() -> dict[str, sa.engine.Dialect]:
    from sqlalchemy.dialects import mysql, postgresql, sqlite

    return {"sqlite": sqlite.dialect(), "postgresql": postgresql.dialect(), "mysql": mysql.dialect()}


_RENDERERS = {"sqlite": _SQLite(), "postgresql": _PostgreSQL(), "mysql": _MySQL(), "mariadb": _MySQL()}
