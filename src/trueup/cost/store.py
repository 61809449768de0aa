"""Costing results into database tables, as one run that `trueup undo` reverts exactly.

Two tables, created on first use:

* `trueup_cogs`, one row per sale line, keyed by (sale_id, sku);
* `trueup_lots_remaining`, what is left of each lot, keyed by (lot_id, sku)
  (`lot_id` is empty for a SKU's moving-average pool).

A write replaces by key and by SKU: a costed sale line replaces the row with
its key (rows of other periods stay), and for every SKU costed in this run
its remaining lots are replaced whole (a lot used up disappears). SKUs that
were quarantined are not touched, so one bad SKU never damages good figures
stored before.

Everything happens in one transaction recorded as a run (`kind = "cost"`):
each replaced or removed row's full image is kept as a delete and each new
row as an insert, so `trueup undo RUN` puts the tables back as they were. A
dry run does the same work and rolls it back, reporting exactly what would
change.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from trueup.cost.result import CostResult
from trueup.cost.write import cogs_frame, lots_frame
from trueup.db import dialect_for
from trueup.reconcile import audit
from trueup.reconcile.apply import change_row
from trueup.reconcile.query import in_key_table
from trueup.reconcile.target import Target
from trueup.reconcile.worktable import WorkTable
from trueup.report.format import to_json

COGS_TABLE = "trueup_cogs"
LOTS_TABLE = "trueup_lots_remaining"
BATCH = 1000


class TableChanges(NamedTuple):
    table: str
    inserted: int  # keys that had no row
    replaced: int  # keys whose row differed
    removed: int  # lots of a costed SKU that no longer exist
    unchanged: int

    @property
    def changed(self) -> int:
        return self.inserted + self.replaced + self.removed


class StoreResult(NamedTuple):
    run_id: int | None  # None for a dry run, or when nothing changed
    tables: tuple[TableChanges, ...]
    applied: bool

    @property
    def changed(self) -> int:
        return sum(t.changed for t in self.tables)


def cogs_table(name: str = COGS_TABLE) -> sa.Table:
    return sa.Table(
        name,
        sa.MetaData(),
        sa.Column("sale_id", sa.String(255), primary_key=True),
        sa.Column("sku", sa.String(255), primary_key=True),
        sa.Column("sold_at", sa.DateTime, nullable=False),
        sa.Column("quantity", sa.Numeric(38, 10), nullable=False),
        sa.Column("cogs", sa.Numeric(38, 10), nullable=False),
        sa.Column("uncosted_quantity", sa.Numeric(38, 10), nullable=False),
        sa.Column("lots", sa.Text, nullable=False),
        sa.Column("method", sa.String(16), nullable=False),
    )


def lots_table(name: str = LOTS_TABLE) -> sa.Table:
    return sa.Table(
        name,
        sa.MetaData(),
        sa.Column("lot_id", sa.String(255), primary_key=True),
        sa.Column("sku", sa.String(255), primary_key=True),
        sa.Column("received", sa.DateTime),
        sa.Column("remaining_quantity", sa.Numeric(38, 10), nullable=False),
        sa.Column("unit_cost", sa.Numeric(38, 10)),
        sa.Column("remaining_value", sa.Numeric(38, 10), nullable=False),
        sa.Column("method", sa.String(16), nullable=False),
    )


def store(
    connection: Connection,
    result: CostResult,
    *,
    apply: bool = False,
    cogs: str = COGS_TABLE,
    lots: str = LOTS_TABLE,
    triggered_by: str = "cost",
) -> StoreResult:
    """Write (or with apply=False, dry-run) the result's lines and remaining lots."""
    targets = [
        (cogs_table(cogs), Target(cogs, ("sale_id", "sku"), "cogs"), _cogs_rows(result), False),
        (lots_table(lots), Target(lots, ("lot_id", "sku"), "remaining_quantity"), _lot_rows(result), True),
    ]
    dialect = dialect_for(connection)
    if not apply and not all(sa.inspect(connection).has_table(t.name) for t, *_ in targets):
        # A dry run creates nothing; with no tables yet, every row would be new.
        new = tuple(TableChanges(table.name, sum(1 for _ in rows), 0, 0, 0) for table, _, rows, _ in targets)
        return StoreResult(None, new, False)
    audit.ensure_tables(connection)
    with dialect.write_transaction(connection):
        for table, *_ in targets:
            table.create(connection, checkfirst=True)
    skus = sorted(set(result.lines["sku"].to_list()) | set(result.remaining["sku"].to_list()))
    try:
        with dialect.write_transaction(connection) as tx:
            run_id = audit.start_run(tx, kind="cost", rule=f"cost:{result.summary.method}", triggered_by=triggered_by)
            changes = tuple(
                _replace(tx, table, target, rows, skus if whole_skus else None, run_id)
                for table, target, rows, whole_skus in targets
            )
            if not (apply and any(c.changed for c in changes)):
                raise _RollBack(changes)
            written = sum(c.inserted + c.replaced for c in changes)
            deleted = sum(c.replaced + c.removed for c in changes)
            audit.finish_run(tx, run_id, inserted=written, deleted=deleted, status="verified")
    except _RollBack as dry_run:
        return StoreResult(None, dry_run.changes, False)
    return StoreResult(run_id, changes, True)


class _RollBack(Exception):
    """Leaves the transaction by rolling it back: a dry run, or nothing to change."""

    def __init__(self, changes: tuple[TableChanges, ...]):
        self.changes = changes


def _replace(
    tx: Connection, table: sa.Table, target: Target, rows: Iterator[dict[str, Any]], skus: list[str] | None, run_id: int
) -> TableChanges:
    """Load the new rows beside the table, then remove what they replace (and, per SKU, what is gone)."""
    dialect = dialect_for(tx)
    prep = tx.dialect.identifier_preparer
    staged = f"trueup_new_{table.name}"[:60]
    tx.exec_driver_sql(dialect.drop_temporary(staged))
    tx.exec_driver_sql(
        f"CREATE TEMPORARY TABLE {prep.quote(staged)} AS SELECT * FROM {prep.quote(table.name)} WHERE 1 = 0"
    )
    new = sa.table(staged, *[sa.column(c.name) for c in table.columns])
    for batch in _batches(rows):
        tx.execute(sa.insert(new).values(batch))
    dialect.analyze(tx, prep.quote(staged))

    same_key = [table.c[k] == new.c[k] for k in target.key]
    values = [c.name for c in table.columns if c.name not in target.key]
    differs = sa.or_(*[table.c[v].is_distinct_from(new.c[v]) for v in values])
    staged_key = sa.select(sa.literal(1)).select_from(new).where(*same_key).exists()
    removed = 0
    if skus is not None:  # before anything leaves the staging table: lots of a costed SKU not there are gone
        costed = WorkTable(tx, f"trueup_skus_{table.name}"[:60], Target(table.name, ("sku",), target.quantity), {})
        costed.create().fill({"k0": sku} for sku in skus)
        removed = _remove(tx, table, target, sa.and_(in_key_table([table.c.sku], costed.table), ~staged_key), run_id)
        costed.drop()
    identical = sa.select(sa.literal(1)).select_from(table).where(*same_key, ~differs).exists()
    unchanged = tx.execute(sa.delete(new).where(identical)).rowcount
    replaced = _remove(tx, table, target, staged_key, run_id)
    inserted = 0
    plain = sa.table(table.name, *[sa.column(c.name) for c in table.columns])  # binds like the staged rows
    for batch in _batches(dict(row._mapping) for row in tx.execute(sa.select(new))):
        tx.execute(sa.insert(plain).values(batch))
        _record(tx, target, batch, "insert", run_id)
        inserted += len(batch)
    tx.exec_driver_sql(dialect.drop_temporary(staged))
    return TableChanges(table.name, inserted - replaced, replaced, removed, unchanged)


def _remove(tx: Connection, table: sa.Table, target: Target, where: sa.ColumnElement[bool], run_id: int) -> int:
    """Delete the rows matching `where`, keeping each full image (as stored) in the audit first."""
    count = 0
    raw = sa.select(*[sa.column(c.name) for c in table.columns]).select_from(table).where(where)
    for batch in _batches(dict(row._mapping) for row in tx.execute(raw)):
        _record(tx, target, batch, "delete", run_id)
        keys = [tuple(row[k] for k in target.key) for row in batch]
        tx.execute(sa.delete(table).where(sa.tuple_(*[table.c[k] for k in target.key]).in_(keys)))
        count += len(batch)
    return count


def _record(tx: Connection, target: Target, rows: list[dict[str, Any]], op: str, run_id: int) -> None:
    value = "after_value" if op == "insert" else "before_value"
    tx.execute(
        sa.insert(audit.changes),
        [
            change_row(run_id, "cost", target, [row[k] for k in target.key], op)
            | {value: str(row[target.quantity]), "row_image": to_json(row)}
            for row in rows
        ],
    )


def _cogs_rows(result: CostResult) -> Iterator[dict[str, Any]]:
    frame = (
        cogs_frame(result)
        .drop("date")
        .with_columns(result.lines["at"].alias("sold_at"), pl.lit(result.summary.method).alias("method"))
    )
    yield from frame.iter_rows(named=True)


def _lot_rows(result: CostResult) -> Iterator[dict[str, Any]]:
    frame = (
        lots_frame(result)
        .drop("received")
        .with_columns(
            result.remaining["received"].alias("received"),
            pl.col("lot_id").fill_null(""),
            pl.lit(result.summary.method).alias("method"),
        )
    )
    yield from frame.iter_rows(named=True)


def _batches(rows: Iterator[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch
