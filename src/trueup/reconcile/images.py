"""Row images: the `trueup_changes` rows a run writes beside its changes, one helper per way of writing them.

* `record_rows`: rows the run holds as Python values (a few inserted rows);
* `record_selected`: rows the database selects, copied by one INSERT … SELECT
  (`cost --write`'s hundred thousand lines), each image built in SQL
  (`Dialect.row_json`, exact for every value);
* `record_table`: a table the run created or dropped (`cost --write`'s result
  tables), with the DDL that makes it again, so undo can reverse that too.

Each change holds the key (JSON), the figure before or after (exact decimal
text) and, for an inserted or deleted row, its whole image (JSON).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from trueup.db import dialect_for
from trueup.reconcile.audit import changes
from trueup.reconcile.target import Target
from trueup.report.format import to_json


def change_row(run_id: int, rule: str, target: Target, key: list[Any] | None, op: str) -> dict[str, Any]:
    """The fixed part of a `trueup_changes` row (plus the key as JSON, when given)."""
    row = {
        "run_id": run_id,
        "rule": rule,
        "table_name": target.table,
        "key_columns": json.dumps(list(target.key)),
        "quantity_column": target.quantity,
        "op": op,
    }
    return row | ({"key": to_json(key)} if key is not None else {})


def record_rows(connection: Connection, run_id: int, rule: str, target: Target, op: str, rows: list[dict]) -> None:
    """Keep the whole image of each row a run inserts (op `insert`) or deletes (`delete`), from Python values."""
    value = "after_value" if op == "insert" else "before_value"
    images = [
        change_row(run_id, rule, target, [row[k] for k in target.key], op)
        | {value: value_text(row[target.quantity]), "row_image": to_json(row)}
        for row in rows
    ]
    if images:
        connection.execute(sa.insert(changes), images)


def record_selected(
    connection: Connection, run_id: int, rule: str, target: Target, op: str, table: sa.TableClause, where: Any = None
) -> None:
    """The same for the rows of `table` (every column of the target's table) that match `where` (all
    of them by default), copied by the database in one INSERT … SELECT however many they are."""
    dialect = dialect_for(connection)
    fixed = change_row(run_id, rule, target, None, op)
    images = sa.select(
        *[sa.literal(v) for v in fixed.values()],
        dialect.json_array(*[table.c[k] for k in target.key]),
        dialect.number_text(table.c[target.quantity]),
        dialect.row_json(table),
    ).select_from(table)
    if where is not None:
        images = images.where(where)
    value = "after_value" if op == "insert" else "before_value"
    connection.execute(sa.insert(changes).from_select([*fixed, "key", value, "row_image"], images))


def record_table(connection: Connection, run_id: int, rule: str, target: Target, op: str, ddl: str) -> None:
    """A table the run created (op `create`) or dropped (`drop`), with the DDL that creates it."""
    row = change_row(run_id, rule, target, [], op) | {"row_image": to_json({"ddl": ddl})}
    connection.execute(sa.insert(changes).values(row))


def value_text(value: Any) -> str | None:
    """A figure as exact decimal text (a float through its shortest repr)."""
    return None if value is None else str(value if not isinstance(value, float) else Decimal(repr(value)))
