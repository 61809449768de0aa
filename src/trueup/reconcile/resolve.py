"""A rule checked against the live schema before any real work runs.

`resolve_rule()` reflects every table a rule names and matches its columns
(exactly, else case-insensitively, so `Product_ID` finds `product_id`),
returning a copy of the rule that uses the database's own spelling, and
checks that every `time` column holds dates or times (a text column would
compare as text, or fail deep inside a query). Then it runs each branch of
the comparison with `LIMIT 0`, so a mistake inside the user's own SQL
(`from`, `where`) is reported against the rule and source it came from; a
`from` source's `time` is typed from that probe's result, where the driver
says (PostgreSQL, MySQL/MariaDB). All failures are `ConfigError`s: the
command could not run.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, NoSuchTableError

from trueup.config import Recorded, Rule, Source
from trueup.db import column_ref, dialect_for, driver_message, user_sql
from trueup.errors import ConfigError
from trueup.reconcile import query

_MAX_LISTED = 15


def resolve_rule(connection: Connection, rule: Rule, label: str = "config") -> Rule:
    """`rule` with identifiers spelled as the database spells them; ConfigError if any is wrong."""
    where = f"{label}: rule {rule.name!r}"
    inspector = sa.inspect(connection)
    recorded = _resolve_recorded(inspector, rule.recorded, f"{where}: recorded")
    sources = [
        _resolve_source(inspector, source, f"{where}: expected[{i}]") if source.table else source
        for i, source in enumerate(rule.expected)
    ]
    resolved = rule.model_copy(update={"recorded": recorded, "expected": sources})
    for i, source in enumerate(resolved.expected):
        if source.from_ is not None and source.time is not None:
            _probe_time(connection, source, f"{where}: expected[{i}].time")
    _probe(connection, resolved, where)
    return resolved


def _resolve_recorded(inspector: Any, recorded: Recorded, where: str) -> Recorded:
    columns = _columns(inspector, recorded.table, f"{where}.table")
    fields = {
        "key": [_column(columns, c, recorded.table, f"{where}.key") for c in recorded.key],
        "quantity": _column(columns, recorded.quantity, recorded.table, f"{where}.quantity"),
    }
    for name in ("unit_value", "group", "time"):
        value = getattr(recorded, name)
        if value is not None:
            fields[name] = _column(columns, value, recorded.table, f"{where}.{name}")
    if recorded.time is not None:
        _must_be_time(inspector.dialect, columns, fields["time"], recorded.table, f"{where}.time")
    return recorded.model_copy(update=fields)


def _resolve_source(inspector: Any, source: Source, where: str) -> Source:
    assert source.table is not None
    columns = _columns(inspector, source.table, f"{where}.table")
    fields: dict[str, Any] = {"key": [_column(columns, c, source.table, f"{where}.key") for c in source.key]}
    if isinstance(source.quantity, str):
        fields["quantity"] = _column(columns, source.quantity, source.table, f"{where}.quantity")
    for name in ("time", "sequence"):
        value = getattr(source, name)
        if value is not None:
            fields[name] = _column(columns, value, source.table, f"{where}.{name}")
    if source.time is not None:
        _must_be_time(inspector.dialect, columns, fields["time"], source.table, f"{where}.time")
    return source.model_copy(update=fields)


def _columns(inspector: Any, table: str, where: str) -> dict[str, Any]:
    """The table's columns and their types, in table order."""
    schema, _, name = table.rpartition(".")
    try:
        return {c["name"]: c["type"] for c in inspector.get_columns(name, schema=schema or None)}
    except NoSuchTableError:
        tables = sorted(inspector.get_table_names(schema=schema or None))
        listed = ", ".join(tables[:_MAX_LISTED]) + (", ..." if len(tables) > _MAX_LISTED else "")
        raise ConfigError(f"{where}: no table {table!r} in the database (tables: {listed or 'none'})") from None


def _column(columns: dict[str, Any], wanted: str, table: str, where: str) -> str:
    """The real column name for `wanted` (which may be qualified as table.column)."""
    qualifier, _, name = wanted.rpartition(".")
    if name in columns:
        return wanted
    folded = [c for c in columns if c.lower() == name.lower()]
    if len(folded) == 1:
        return f"{qualifier}.{folded[0]}" if qualifier else folded[0]
    listed = ", ".join(list(columns)[:_MAX_LISTED]) + (", ..." if len(columns) > _MAX_LISTED else "")
    raise ConfigError(f"{where}: no column {name!r} in table {table!r} (columns: {listed})")


def _must_be_time(sa_dialect: sa.Dialect, columns: dict[str, Any], column: str, table: str, where: str) -> None:
    """A `time` column must hold dates or times; a column of unknown type (untyped in SQLite) passes."""
    type_ = columns[column.rpartition(".")[2]]
    if isinstance(type_, sa.DateTime | sa.Date | sa.types.NullType):
        return
    try:
        name = type_.compile(dialect=sa_dialect)
    except sa.exc.CompileError:
        name = type(type_).__name__
    raise ConfigError(_not_a_time(f"column {column!r} of table {table!r}", name, where))


def _probe_time(connection: Connection, source: Source, where: str) -> None:
    """The type of a `from` source's time column, read from a LIMIT 0 query's result description."""
    prep = connection.dialect.identifier_preparer
    select = sa.select(column_ref(prep, source.time or "")).select_from(user_sql(source.from_ or "")).limit(0)
    try:
        result = connection.execute(select)
    except DBAPIError:
        connection.rollback()
        return  # a mistake in the `from` itself: the branch probe that follows names it
    type_code = result.cursor.description[0][1] if result.cursor is not None else None
    result.close()
    found = dialect_for(connection).result_type(type_code)
    if found is not None and not found[1]:
        raise ConfigError(_not_a_time(f"column {source.time!r}", found[0], where))


def _not_a_time(what: str, type_name: str, where: str) -> str:
    return (
        f"{where}: {what} is of type {type_name}, not a date or time; `time` needs a timestamp or date "
        "column (for an ever-increasing id, use `sequence`)"
    )


def _probe(connection: Connection, rule: Rule, where: str) -> None:
    """Run each branch with LIMIT 0 so a mistake in the user's SQL names its source."""
    sa_dialect, dialect = connection.dialect, dialect_for(connection)
    prep = sa_dialect.identifier_preparer
    branches = [("recorded", query.recorded_branch(rule, prep, dialect, query.EVERYTHING))]
    branches += [
        (f"expected[{i}]", query.source_branch(rule, s, prep, dialect, query.EVERYTHING))
        for i, s in enumerate(rule.expected)
    ]
    for name, branch in branches:
        try:
            connection.execute(branch.limit(0)).all()
        except DBAPIError as error:
            connection.rollback()
            raise ConfigError(f"{where}: {name}: the database rejected it: {driver_message(error)}") from None
