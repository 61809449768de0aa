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

The work is set-based, like apply's: each table's new rows are bulk-loaded
into a temporary staging table (`COPY` on PostgreSQL, multi-row inserts
elsewhere, a batch at a time), then one statement per kind of change — the
audit images of the rows going, the DELETE of lots gone, the DELETE of rows
replaced, the INSERT … SELECT of new rows and their images — whatever the
number of lines. Example: 5 lines where 3 are stored already, 1 of them with a
different cost: 2 unchanged (dropped from the staging table), 1 replaced
(image kept, row deleted), 3 inserted (the changed one and 2 new).

A run that creates the tables records it, and its undo drops them again
when they are empty. On PostgreSQL and SQLite they are created inside the
run's transaction, so a killed run leaves nothing. MySQL/MariaDB commit
around DDL: there the tables are created just before the transaction and
marked as trueup's (a table comment); a marked, empty table that no live run
records creating was left by a run that never committed, and the next run
takes it over as its own.
"""

from __future__ import annotations

from typing import NamedTuple

import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.schema import CreateTable

from trueup.cost.result import CostResult
from trueup.cost.write import cogs_frame, lots_frame
from trueup.db import dialect_for
from trueup.reconcile import audit, images
from trueup.reconcile.query import in_key_table
from trueup.reconcile.target import Target
from trueup.reconcile.worktable import WorkTable

COGS_TABLE = "trueup_cogs"
LOTS_TABLE = "trueup_lots_remaining"
BATCH = 5000  # rows per bulk-load chunk: memory stays bounded however many lines there are
CREATED_BY = "made by trueup cost --write"  # the comment that marks a result table as trueup's own


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
        comment=CREATED_BY,
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
        comment=CREATED_BY,
    )


class _Output(NamedTuple):
    table: sa.Table
    target: Target
    frame: pl.DataFrame
    whole_skus: bool  # a costed SKU's rows are replaced whole (lots used up disappear)


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
    outputs = (
        _Output(cogs_table(cogs), Target(cogs, ("sale_id", "sku"), "cogs"), _cogs_frame(result), False),
        _Output(lots_table(lots), Target(lots, ("lot_id", "sku"), "remaining_quantity"), _lots_frame(result), True),
    )
    dialect = dialect_for(connection)
    if not apply and not all(sa.inspect(connection).has_table(o.table.name) for o in outputs):
        # A dry run creates nothing; with no tables yet, every row would be new.
        return StoreResult(None, tuple(TableChanges(o.table.name, o.frame.height, 0, 0, 0) for o in outputs), False)
    audit.ensure_tables(connection)
    before = () if dialect.transactional_ddl or not apply else _create_before(connection, outputs)
    skus = sorted(set(result.lines["sku"].to_list()) | set(result.remaining["sku"].to_list()))
    try:
        with dialect.write_transaction(connection) as tx:
            created = before if not dialect.transactional_ddl else _create_missing(tx, outputs)
            run_id = audit.start_run(tx, kind="cost", rule=f"cost:{result.summary.method}", triggered_by=triggered_by)
            for output in created:
                images.record_table(tx, run_id, "cost", output.target, "create", _ddl(tx, output.table))
            changes = tuple(_replace(tx, output, skus, run_id) for output in outputs)
            if not (apply and any(c.changed for c in changes)):
                raise _RollBack(changes)
            written = sum(c.inserted + c.replaced for c in changes)
            deleted = sum(c.replaced + c.removed for c in changes)
            audit.finish_run(tx, run_id, inserted=written, deleted=deleted, status="verified")
    except _RollBack as dry_run:
        _drop(connection, before)
        return StoreResult(None, dry_run.changes, False)
    return StoreResult(run_id, changes, True)


class _RollBack(Exception):
    """Leaves the transaction by rolling it back: a dry run, or nothing to change."""

    def __init__(self, changes: tuple[TableChanges, ...]):
        self.changes = changes


def _create_missing(tx: Connection, outputs: tuple[_Output, ...]) -> tuple[_Output, ...]:
    """Inside the run's transaction (transactional DDL): create the tables that do not exist yet."""
    created = tuple(o for o in outputs if not sa.inspect(tx).has_table(o.table.name))
    for output in created:
        output.table.create(tx)
    return created


def _create_before(connection: Connection, outputs: tuple[_Output, ...]) -> tuple[_Output, ...]:
    """Where DDL commits (MySQL): create the missing tables before the run's transaction, and take over
    the empty ones a run that never committed left behind. Returns the tables this run creates."""
    taken = []
    with dialect_for(connection).write_transaction(connection):
        for output in outputs:
            if not sa.inspect(connection).has_table(output.table.name):
                output.table.create(connection)
                taken.append(output)
            elif _left_behind(connection, output.table):
                taken.append(output)
    return tuple(taken)


def _left_behind(connection: Connection, table: sa.Table) -> bool:
    """Made by trueup, empty, and no live run records creating it: a killed run's table."""
    comment = sa.inspect(connection).get_table_comment(table.name).get("text")
    if comment != CREATED_BY or audit.creates_table(connection, table.name):
        return False
    return connection.execute(sa.select(sa.literal(1)).select_from(table).limit(1)).first() is None


def _drop(connection: Connection, outputs: tuple[_Output, ...]) -> None:
    """Drop the tables this run created before its transaction, which it rolled back (MySQL)."""
    if outputs:
        with dialect_for(connection).write_transaction(connection):
            for output in outputs:
                output.table.drop(connection, checkfirst=True)


def _ddl(connection: Connection, table: sa.Table) -> str:
    return str(CreateTable(table).compile(dialect=connection.dialect)).strip()


def _replace(tx: Connection, output: _Output, skus: list[str], run_id: int) -> TableChanges:
    """Load the new rows beside the table, then remove what they replace (and, per SKU, what is gone)."""
    table, target = output.table, output.target
    new = _stage(tx, table, output.frame)
    same_key = [table.c[k] == new.c[k] for k in target.key]
    values = [c.name for c in table.columns if c.name not in target.key]
    differs = sa.or_(*[table.c[v].is_distinct_from(new.c[v]) for v in values])
    staged_key = sa.select(sa.literal(1)).select_from(new).where(*same_key).exists()
    removed = 0
    if output.whole_skus:  # before anything leaves the staging table: lots of a costed SKU not there are gone
        costed = WorkTable(tx, f"trueup_skus_{table.name}"[:60], Target(table.name, ("sku",), target.quantity), {})
        skus_frame = pl.DataFrame({"k0": skus}, schema={"k0": pl.String})
        _load(tx, costed.create().table, skus_frame, list(costed.keys))
        removed = _remove(tx, table, target, sa.and_(in_key_table([table.c.sku], costed.table), ~staged_key), run_id)
        costed.drop()
    identical = sa.select(sa.literal(1)).select_from(table).where(*same_key, ~differs).exists()
    unchanged = tx.execute(sa.delete(new).where(identical)).rowcount
    replaced = _remove(tx, table, target, staged_key, run_id)
    names = [c.name for c in table.columns]
    tx.execute(sa.insert(table).from_select(names, sa.select(*[new.c[n] for n in names])))
    inserted = tx.execute(sa.select(sa.func.count()).select_from(new)).scalar_one()
    images.record_selected(tx, run_id, "cost", target, "insert", new)  # the staged rows are the new rows, as stored
    tx.exec_driver_sql(dialect_for(tx).drop_temporary(new.name))
    return TableChanges(table.name, inserted - replaced, replaced, removed, unchanged)


def _stage(tx: Connection, table: sa.Table, frame: pl.DataFrame) -> sa.TableClause:
    """A temporary table shaped like `table`, holding `frame`'s rows."""
    prep = tx.dialect.identifier_preparer
    name = f"trueup_new_{table.name}"[:60]
    tx.exec_driver_sql(dialect_for(tx).drop_temporary(name))
    shape = f"SELECT * FROM {prep.quote(table.name)} WHERE 1 = 0"
    tx.exec_driver_sql(f"CREATE TEMPORARY TABLE {prep.quote(name)} AS {shape}")
    return _load(tx, sa.table(name, *[sa.column(c.name) for c in table.columns]), frame, [*table.primary_key.columns])


def _load(tx: Connection, table: sa.TableClause, frame: pl.DataFrame, keys: list[sa.Column]) -> sa.TableClause:
    """Bulk-load `frame` (columns named as the table's) a batch at a time: COPY where the driver
    streams it, else multi-row inserts; then give the planner statistics of the key columns."""
    dialect = dialect_for(tx)
    prep = tx.dialect.identifier_preparer
    name = prep.quote(table.name)
    csv = (chunk.write_csv(include_header=False).encode() for chunk in frame.iter_slices(BATCH))
    if not dialect.copy_csv(tx, name, frame.columns, csv):
        for chunk in frame.iter_slices(BATCH):
            tx.execute(sa.insert(table), chunk.to_dicts())
    dialect.analyze(tx, name, [prep.quote(k.name) for k in keys])
    return table


def _remove(tx: Connection, table: sa.Table, target: Target, where: sa.ColumnElement[bool], run_id: int) -> int:
    """Delete the rows matching `where`, keeping each full image (as stored) in the audit first."""
    images.record_selected(tx, run_id, "cost", target, "delete", table, where)
    return tx.execute(sa.delete(table).where(where)).rowcount


def _cogs_frame(result: CostResult) -> pl.DataFrame:
    return (
        cogs_frame(result)
        .drop("date")
        .with_columns(result.lines["at"].alias("sold_at"), pl.lit(result.summary.method).alias("method"))
        .select([c.name for c in cogs_table().columns])
    )


def _lots_frame(result: CostResult) -> pl.DataFrame:
    return (
        lots_frame(result)
        .drop("received")
        .with_columns(
            result.remaining["received"].alias("received"),
            pl.col("lot_id").fill_null(""),
            pl.lit(result.summary.method).alias("method"),
        )
        .select([c.name for c in lots_table().columns])
    )
