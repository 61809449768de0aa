"""A rule checked against the live schema before any real work runs.

`resolve_rule()` reflects every table a rule names and matches it and its
columns (exactly, else case-insensitively when only one name fits, so
`Product_ID` finds `product_id` and `tabbin` finds `tabBin`), returning a copy
of the rule that uses the database's own spelling. A name that matches nothing
is an error naming the nearest names there are ("did you mean `tabBin`?"). It
checks that every `time` column holds dates or times (a text column would
compare as text, or fail deep inside a query). Then it runs each branch of the
comparison with `LIMIT 0`, so a mistake inside the user's own SQL (`from`,
`where`) is reported against the rule and source it came from; a `from`
source's `time` is typed from that probe's result, where the driver says
(PostgreSQL, MySQL/MariaDB). All failures are `ConfigError`s: the command could
not run.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from trueup.config import Recorded, Rule, Source
from trueup.db import column_ref, dialect_for, driver_message, user_sql
from trueup.errors import ConfigError
from trueup.names import join_name, split_name
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


def recorded_key_is_unique(connection: Connection, rule: Rule) -> bool:
    """True when each key is at most one recorded row: no key column is nullable, and the primary
    key or a unique constraint or (non-partial) unique index lies within the key columns."""
    inspector = sa.inspect(connection)
    *qualifier, table = split_name(rule.recorded.table)
    schema = qualifier[0] if qualifier else None
    key = {split_name(column)[-1] for column in rule.recorded.key}
    try:
        if any(c["nullable"] for c in inspector.get_columns(table, schema=schema) if c["name"] in key):
            return False
        unique = [inspector.get_pk_constraint(table, schema=schema)["constrained_columns"]]
        unique += [u["column_names"] for u in inspector.get_unique_constraints(table, schema=schema)]
        indexes = inspector.get_indexes(table, schema=schema)
    except (DBAPIError, NotImplementedError):  # a view, or a database that cannot say
        return False
    unique += [i["column_names"] for i in indexes if i["unique"] and not _partial(i)]
    return any(columns and None not in columns and set(columns) <= key for columns in unique)


def _partial(index: dict[str, Any]) -> bool:
    options = index.get("dialect_options", {})
    return any(name.endswith("_where") and value is not None for name, value in options.items())


def _resolve_recorded(inspector: Any, recorded: Recorded, where: str) -> Recorded:
    table, columns = _table(inspector, recorded.table, f"{where}.table")
    fields: dict[str, Any] = {
        "table": table,
        "key": [_column(columns, c, table, f"{where}.key") for c in recorded.key],
        "quantity": _column(columns, recorded.quantity, table, f"{where}.quantity"),
        "insert_defaults": {
            _column(columns, name, table, f"{where}.insert_defaults"): value
            for name, value in recorded.insert_defaults.items()
        },
    }
    for name in ("unit_value", "group", "time"):
        value = getattr(recorded, name)
        if value is not None:
            fields[name] = _column(columns, value, table, f"{where}.{name}")
    if recorded.time is not None:
        _must_be_time(inspector.dialect, columns, fields["time"], table, f"{where}.time")
    return recorded.model_copy(update=fields)


def _resolve_source(inspector: Any, source: Source, where: str) -> Source:
    assert source.table is not None
    table, columns = _table(inspector, source.table, f"{where}.table")
    fields: dict[str, Any] = {"table": table, "key": [_column(columns, c, table, f"{where}.key") for c in source.key]}
    if isinstance(source.quantity, str):
        fields["quantity"] = _column(columns, source.quantity, table, f"{where}.quantity")
    for name in ("time", "sequence"):
        value = getattr(source, name)
        if value is not None:
            fields[name] = _column(columns, value, table, f"{where}.{name}")
    if source.time is not None:
        _must_be_time(inspector.dialect, columns, fields["time"], table, f"{where}.time")
    return source.model_copy(update=fields)


def _table(inspector: Any, table: str, where: str) -> tuple[str, dict[str, Any]]:
    """The table as the database spells it (`schema.table` kept qualified), and its columns and their types."""
    *qualifier, wanted = split_name(table)
    schema = qualifier[0] if qualifier else None
    try:
        names = [*inspector.get_table_names(schema=schema), *inspector.get_view_names(schema=schema)]
    except DBAPIError:  # MySQL: no such database
        names = []
    name = _match(names, wanted, f"{where}: no table {table!r} in the database", qualifier)
    columns = {c["name"]: c["type"] for c in inspector.get_columns(name, schema=schema)}
    return join_name([*qualifier, name]), columns


def _column(columns: dict[str, Any], wanted: str, table: str, where: str) -> str:
    """The real column name for `wanted` (which may be qualified as table.column)."""
    *qualifier, name = split_name(wanted)
    real = _match(list(columns), name, f"{where}: no column {name!r} in table {table!r}")
    return join_name([*qualifier, real])


def _match(names: list[str], wanted: str, missing: str, qualifier: Sequence[str] = ()) -> str:
    """`wanted` among `names`: exactly, else the one name equal to it but for case; else a
    ConfigError saying `missing`, with the nearest names (difflib) or, failing those, a list."""
    if wanted in names:
        return wanted
    folded = [n for n in names if n.casefold() == wanted.casefold()]
    if len(folded) == 1:
        return folded[0]
    spell = [f"`{join_name([*qualifier, n])}`" for n in (folded or _nearest(names, wanted))]
    if spell:
        hint = (
            f"did you mean {', '.join(spell[:-1])} or {spell[-1]}?" if len(spell) > 1 else f"did you mean {spell[0]}?"
        )
    else:
        listed = ", ".join(sorted(names)[:_MAX_LISTED]) + (", ..." if len(names) > _MAX_LISTED else "")
        hint = f"it has: {listed or 'none'}"
    raise ConfigError(f"{missing}; {hint}")


def _nearest(names: list[str], wanted: str) -> list[str]:
    """Up to three names closest to `wanted`, compared without regard to case."""
    by_fold = {n.casefold(): n for n in names}
    return [by_fold[n] for n in difflib.get_close_matches(wanted.casefold(), list(by_fold), n=3, cutoff=0.6)]


def _must_be_time(sa_dialect: sa.Dialect, columns: dict[str, Any], column: str, table: str, where: str) -> None:
    """A `time` column must hold dates or times; a column of unknown type (untyped in SQLite) passes."""
    type_ = columns[split_name(column)[-1]]
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
