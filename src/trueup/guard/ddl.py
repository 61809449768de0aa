"""Rules -> trigger DDL: what each table's triggers must queue (plain data), rendered per dialect.

A rule reads its recorded table, each `table` source and each table joined in
a `from` source. For each, `watched()` lists the key columns (in recorded-key
order) and the columns the rule reads; `marks()` says, per event, which row
images to queue and when:

| event  | queues                                                                          |
| ------ | ------------------------------------------------------------------------------- |
| INSERT | the new row's key                                                               |
| DELETE | the old row's key                                                               |
| UPDATE | the old key when a read column changed; the new key too when the key changed    |

A table with a `where` reads columns we cannot name (the fragment is the
user's SQL), so any update to it queues the old key; so does every table of a
`from` source (its ON conditions are SQL too).

A table of a `from` source gets its key one of two ways (`joined()`):

* derived, when every key expression is a column of that table (`key =
  ["m.item_id"]` on `moves m JOIN items i ...`: a change to `moves` queues its
  row's `item_id`);
* looked up, by the SQL of `[rules.expected.guard.<table>]`, run for each image
  of the changed row (`row.` written as `OLD.`/`NEW.`). In the storefront
  shape a line item finds its storefront through its request, and a request
  fans out to the keys of all its line items:

      inventory_transferrequestlineitem: key = ["r.storefront_id", "row.product_id"],
          from = "inventory_transferrequest r", where = "r.id = row.request_id"
      inventory_transferrequest: key = ["row.storefront_id", "li.product_id"],
          from = "inventory_transferrequestlineitem li", where = "li.request_id = row.id"

  A line item moved from request 1 (storefront 1) to request 3 (storefront 2)
  queues (1, product) from its old image and (2, product) from its new one. A
  looked-up table's UPDATE queues both images' keys, whatever changed.

A table neither derived nor looked up is refused (`ConfigError`), naming the
table and the field to write. The key is written as a JSON array, as
`trueup.reconcile.queue` holds keys; rounds decode and type it. Every
identifier is quoted by the dialect's preparer, every value is rendered by
SQLAlchemy as a literal (DDL takes no parameters), and the user's lookup SQL
is parenthesised.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from trueup import fromclause
from trueup.config import Rule, Source
from trueup.db import dialect_for_name, quote_name
from trueup.errors import ConfigError, UsageError
from trueup.names import join_name, split_name

EVENTS = ("insert", "update", "delete")
QUEUE = "trueup_dirty"
TOUCHED = "trueup_touched"  # alarm, enforce: the keys a transaction touched (see trueup.guard.commit)
MODES = ("capture", "alarm", "enforce")
QUEUED_BY = "guard:capture"


@dataclass(frozen=True)
class Lookup:
    """The keys a changed row touches: `SELECT <key> [FROM <joined> WHERE <where>]`, naming the row `row`."""

    key: tuple[str, ...]
    joined: str | None = None
    where: str | None = None
    place: str = ""  # where the config says it, for messages: "trueup.toml: rule 'r': expected[0].guard.t"


@dataclass(frozen=True)
class Watched:
    """One table a rule reads: its key columns (recorded-key order) and the columns read (None: unknown);
    a `lookup` finds the key instead (its `key` is empty)."""

    table: str
    key: tuple[str, ...]
    read: tuple[str, ...] | None
    lookup: Lookup | None = None


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
    """The tables a (resolved) rule reads; ConfigError for a table of a `from` source whose rows
    cannot be mapped to the rule's key."""
    recorded = rule.recorded
    read = None if recorded.where else (*recorded.key, recorded.quantity)
    found = [Watched(recorded.table, tuple(recorded.key), _bare(read))]
    for index, source in enumerate(rule.expected):
        if source.table is None:
            found += joined(source, f"{label}: rule {rule.name!r}: expected[{index}]", mode)
            continue
        columns = [*source.key, *([source.quantity] if isinstance(source.quantity, str) else [])]
        found.append(Watched(source.table, _bare(source.key) or (), None if source.where else _bare(columns)))
    return _merged(found)


def joined(source: Source, where: str, mode: str) -> list[Watched]:
    """Each table of a `from` source, with its key derived from its own columns or looked up."""
    try:
        tables = fromclause.tables(source.from_ or "")
    except ValueError as error:
        raise ConfigError(f"{where}.from: guard {mode} needs the tables of `from`, but it {error}") from None
    found = []
    for table, alias in tables:
        lookup = next((g for t, g in source.guard.items() if fromclause.same_table(t, table)), None)
        if lookup is not None:
            place = f"{where}.guard.{table}"
            found.append(Watched(table, (), None, Lookup(tuple(lookup.key), lookup.from_, lookup.where, place)))
            continue
        own = _own_columns(source.key, table, alias, single=len(tables) == 1)
        if own is None:
            raise ConfigError(
                f"{where}: guard {mode} cannot map a changed row of {table!r} to the key "
                f"{', '.join(source.key)}: not every key expression is a column of {alias!r}; "
                f"say how in [rules.expected.guard.{table}] (key, from, where, naming the row `row`)"
            )
        found.append(Watched(table, own, None))
    return found


def _own_columns(key: Sequence[str], table: str, alias: str, single: bool) -> tuple[str, ...] | None:
    """The key as columns of this table (written `alias.column`, or bare when it is the only table)."""
    columns = []
    for expression in key:
        *qualifier, column = split_name(expression)
        ok = (not qualifier and single) or (
            qualifier and (qualifier == [alias] or fromclause.same_table(join_name(qualifier), table))
        )
        if not ok:
            return None
        columns.append(column)
    return tuple(columns)


def marks(table: Watched, event: str) -> list[Mark]:
    if event == "insert":
        return [Mark("NEW")]
    if event == "delete":
        return [Mark("OLD")]
    old = Mark("OLD") if table.read is None else Mark("OLD", table.read)
    return [old, Mark("NEW", table.key)]


def probe(table: Watched, preparer: Any) -> str:
    """A query that runs `table`'s lookup once, reading no row (LIMIT 0): the database checks its SQL at
    plan time, not the trigger when the application writes. The changed row is the table itself."""
    assert table.lookup is not None
    row = "trueup_row"
    keys, joined, where = lookup_sql(table.lookup, row)
    on = ".".join(quote_name(preparer, p) for p in split_name(table.table))
    cross = f" CROSS JOIN {joined}" if joined else ""
    return f"SELECT {', '.join(keys)} FROM {on} {row}{cross}{f' WHERE {where}' if where else ''} LIMIT 0"


def lookup_sql(lookup: Lookup, row: str) -> tuple[list[str], str, str]:
    """The lookup's key expressions, its FROM and its WHERE ('' when absent) for the row image `row`. Each
    is the user's SQL ended by a newline, so a trailing `-- comment` cannot swallow what follows it (the
    trigger bodies are one line)."""
    keys = [f"({fromclause.image(k, row)}\n)" for k in lookup.key]
    joined = f"{fromclause.image(lookup.joined, row)}\n" if lookup.joined else ""
    where = f"({fromclause.image(lookup.where, row)}\n)" if lookup.where else ""
    return keys, joined, where


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
    merged: dict[tuple[str, tuple[str, ...], Lookup | None], Watched] = {}
    for w in found:
        seen = merged.get((w.table, w.key, w.lookup))
        if seen is not None:
            read = None if seen.read is None or w.read is None else tuple(dict.fromkeys((*seen.read, *w.read)))
            w = Watched(w.table, w.key, read, w.lookup)
        merged[(w.table, w.key, w.lookup)] = w
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

    def insert(self, rule: str, row: str, table: Watched, schema: str | None, mode: str = "capture") -> str:
        """The statement queueing the key(s) of the `row` image: one row of values, or a lookup's rows."""
        values, tail = self.keys(row, table)
        json = dialect_for_name(self.backend).json_array(*[sa.literal_column(v) for v in values])
        rendered = str(json.compile(dialect=self.dialect, compile_kwargs={"literal_binds": True}))
        if mode != "capture":  # alarm, enforce: note the key once per transaction for the check at commit
            touched = self.table(join_name([schema, TOUCHED]) if schema else TOUCHED)
            return (
                f"INSERT INTO {touched} ({self.q('txid')}, {self.q('rule')}, {self.q('key')}) "
                f"{_rows(f'txid_current(), {self.literal(rule)}, {rendered}', tail)} ON CONFLICT DO NOTHING"
            )
        queue = self.table(join_name([schema, QUEUE]) if schema else QUEUE)
        return (
            f"INSERT INTO {queue} ({self.q('rule')}, {self.q('key')}, {self.q('queued_at')}, {self.q('queued_by')}) "
            f"{_rows(f'{self.literal(rule)}, {rendered}, {self.now}, {self.literal(QUEUED_BY)}', tail)}"
        )

    def keys(self, row: str, table: Watched) -> tuple[list[str], str]:
        """The key expressions for the `row` image and the FROM/WHERE tail they need (a lookup's)."""
        lookup = table.lookup
        if lookup is None:
            return [f"{row}.{self.q(c)}" for c in table.key], ""
        values, joined, where = lookup_sql(lookup, row)
        return values, (f" FROM {joined}" if joined else "") + (f" WHERE {where}" if where else "")

    def block(self, rule: str, mark: Mark, table: Watched, schema: str | None, mode: str = "capture") -> str:
        """The mark as a statement of a procedural body (MySQL, PL/pgSQL)."""
        insert = self.insert(rule, mark.row, table, schema, mode)
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
                f"BEGIN {self.insert(rule, mark.row, table, None)}; END"
            )
            drop.append(f"DROP TRIGGER IF EXISTS {trigger}")
        return Trigger(name, table.table, event, tuple(create), tuple(drop))


class _MySQL(_Renderer):
    """One MySQL trigger per event, its marks as IF blocks (MySQL triggers have no WHEN)."""

    backend = "mysql"
    distinct = "NOT ({old} <=> {new})"
    now = "UTC_TIMESTAMP()"

    def trigger(self, rule: str, name: str, table: Watched, event: str, schema: str | None, mode: str) -> Trigger:
        body = " ".join(self.block(rule, mark, table, None) for mark in marks(table, event))
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

    def search_path(self, table: Watched, schema: str | None) -> str:
        """The catalog; for a lookup, whose SQL names its tables as the config does, the schema next."""
        return f"pg_catalog, {self.q(schema)}, pg_temp" if table.lookup and schema else "pg_catalog, pg_temp"

    def trigger(self, rule: str, name: str, table: Watched, event: str, schema: str | None, mode: str) -> Trigger:
        body = " ".join(self.block(rule, mark, table, schema, mode) for mark in marks(table, event))
        function = self.table(join_name([schema, name]) if schema else name)
        on = self.table(table.table)
        create = (
            f"CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql "
            f"SECURITY DEFINER SET search_path = {self.search_path(table, schema)} "
            f"AS {plpgsql_body(rule, f'BEGIN {body} RETURN NULL; END')}",
            f"CREATE TRIGGER {self.q(name)} AFTER {event.upper()} ON {on} FOR EACH ROW EXECUTE FUNCTION {function}()",
        )
        drop = (f"DROP TRIGGER IF EXISTS {self.q(name)} ON {on}", f"DROP FUNCTION IF EXISTS {function}()")
        return Trigger(name, table.table, event, create, drop)


def plpgsql_body(rule: str, body: str) -> str:
    """`body` as a function body in `$trueup$` quotes; a rule whose SQL holds that marker would end the
    body early and run the rest as statements of its own, so it is refused."""
    if "$trueup$" in body.lower():
        raise ConfigError(f"rule {rule!r}: its SQL contains `$trueup$`, which the guard's functions are quoted with")
    return f"$trueup${body}$trueup$"


def _rows(values: str, tail: str) -> str:
    """What an INSERT writes: one row of `values`, or one per row of a lookup's FROM/WHERE `tail`."""
    return f"SELECT {values}{tail}" if tail else f"VALUES ({values})"


def _dialects() -> dict[str, sa.engine.Dialect]:
    from sqlalchemy.dialects import mysql, postgresql, sqlite

    return {"sqlite": sqlite.dialect(), "postgresql": postgresql.dialect(), "mysql": mysql.dialect()}


_RENDERERS = {"sqlite": _SQLite(), "postgresql": _PostgreSQL(), "mysql": _MySQL(), "mariadb": _MySQL()}
