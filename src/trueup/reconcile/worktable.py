"""Temporary work tables: one rule's keys and figures, for set-based repair statements to join.

A work table is created with `CREATE TEMPORARY TABLE … AS SELECT … LIMIT 0`
from the recorded table itself, so its key columns k0..kn and its figure
columns have exactly the types of the recorded key and quantity columns
(UUIDs stay UUIDs, decimals keep their scale) without trueup knowing them.
Temporary tables are private to the connection and do not end a MySQL
transaction; they are dropped when the repair is done.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from trueup.db import column_ref, dialect_for, table_ref
from trueup.reconcile.query import in_key_table
from trueup.reconcile.target import Target

QUANTITY = "quantity"  # a column typed like the recorded quantity
FLAG = "flag"  # a small integer
BATCH = 1000  # rows per INSERT: well under PostgreSQL's 65,535 bind parameters for wide keys


class WorkTable:
    def __init__(self, connection: Connection, name: str, target: Target, columns: Mapping[str, str]):
        self.connection = connection
        self.name = name
        self.target = target
        self.width = len(target.key)
        self.key_names = [f"k{i}" for i in range(self.width)]
        self.columns = dict(columns)
        self.table = sa.table(name, *[sa.column(c) for c in [*self.key_names, *self.columns]])

    @property
    def keys(self) -> list[sa.ColumnElement[Any]]:
        return [self.table.c[name] for name in self.key_names]

    def create(self) -> WorkTable:
        prep = self.connection.dialect.identifier_preparer
        target = self.target
        shape = [column_ref(prep, k).label(n) for k, n in zip(target.key, self.key_names, strict=True)]
        dialect = dialect_for(self.connection)
        for name, kind in self.columns.items():
            quantity = dialect.nullable_copy(column_ref(prep, target.quantity))
            shape.append((quantity if kind == QUANTITY else sa.literal_column("0")).label(name))
        select = sa.select(*shape).select_from(table_ref(target.table)).limit(0)
        compiled = select.compile(dialect=self.connection.dialect, compile_kwargs={"literal_binds": True})
        self.drop()
        self.connection.exec_driver_sql(f"CREATE TEMPORARY TABLE {prep.quote(self.name)} AS {compiled}")
        return self

    def fill(self, rows: Iterable[Mapping[str, Any]]) -> WorkTable:
        """Insert rows (dicts keyed k0.. and the extra column names) in multi-row batches, then analyze."""
        batch: list[Mapping[str, Any]] = []
        for row in rows:
            batch.append(row)
            if len(batch) == BATCH:
                self._insert(batch)
                batch = []
        if batch:
            self._insert(batch)
        return self.analyze()

    def analyze(self) -> WorkTable:
        dialect_for(self.connection).analyze(
            self.connection, self.connection.dialect.identifier_preparer.quote(self.name)
        )
        return self

    def drop(self) -> None:
        self.connection.exec_driver_sql(dialect_for(self.connection).drop_temporary(self.name))

    def joins(self, other_columns: list[sa.ColumnElement[Any]]) -> list[sa.ColumnElement[bool]]:
        """Equality of this table's keys with `other_columns`, for ON / WHERE clauses."""
        return [mine == theirs for mine, theirs in zip(self.keys, other_columns, strict=True)]

    def lock_targets(self) -> None:
        """Row-lock the target rows whose keys this table holds, in key order (a no-op on SQLite)."""
        table = self.target.clause()
        columns = [table.c[k] for k in self.target.key]
        query = sa.select(*columns).where(in_key_table(columns, self.table)).order_by(*columns)
        dialect_for(self.connection).lock_rows(self.connection, query)

    def _insert(self, batch: list[Mapping[str, Any]]) -> None:
        # One INSERT … VALUES (…), (…) per batch: drivers' executemany sends a statement per row.
        self.connection.execute(sa.insert(self.table).values(list(batch)))


def drop_all(connection: Connection, tables: Iterable[WorkTable]) -> None:
    """Drop work tables in a transaction of their own, ending any open one first (MySQL keeps
    temporary tables across a rollback, so they are dropped, not left to the transaction)."""
    if connection.in_transaction():
        connection.rollback()
    with connection.begin():
        for table in tables:
            table.drop()
