"""bench-sync: an incremental sync round beside a full check, on the check benchmark's database.

    make bench-sync                                               # 1,000,000 items, 20,000,000 logs
    make bench-sync BENCH_ARGS="--items 100000 --rows 2000000"    # a tenth

It reuses (or generates) bench-check's data: the usage_logs shape, items
minus their diaper-change logs, in database `trueup_bench`. Then, for each
index layout of the log table:

1. a full round sets the watermark (the newest `logged_at`);
2. 1,000 new usage logs arrive for random items, stamped now, never deducted;
3. (a) an incremental round: the keys touched since the watermark (minus the
   overlap), checked and recorded; (b) a full check of the rule, every
   drifted key streamed. Both in this process, each --repeat times.

The layouts: "key index", the data as bench-check generates it (an index on
`inventory_item_id` alone, as an application has), where an incremental
round fetches each touched item's logs from the table's heap, one random
page per log; and "covering index", the same plus an index on
`inventory_item_id` that INCLUDEs the columns the rule reads, so those logs
come from the index alone. The covering index is built for the run and
dropped afterwards.

Incremental rounds need an index on the time column (the README says so);
this creates it once. The overlap is 0 by default: the full check runs
between rounds, so any overlap would check the previous repeat's 1,000 keys
again (`--overlap` to see that cost). The new logs and the sync tables are
removed afterwards, so bench-check's data stays as generated.

Goals (issue 6): (a) ≤ 1 s and (b)/(a) ≥ 50.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from datetime import timedelta
from typing import Annotated, NamedTuple

import sqlalchemy as sa
import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import make_url

sys.path.insert(0, os.path.dirname(__file__))
import bench_check

from trueup.config import Config, parse_config
from trueup.db import open_engine
from trueup.examples import usage_logs
from trueup.reconcile.check import CheckRun
from trueup.reconcile.sync import SyncOptions, run_round

console = Console(stderr=True)
app = typer.Typer(add_completion=False)
NEW_ROWS = 1000
COVERING = (
    "CREATE INDEX ix_usage_logs_item_covering ON usage_logs (inventory_item_id) "
    "INCLUDE (usage_type, is_deleted, quantity_used, logged_at)"
)
SYNC_TABLES = ("trueup_drift_history", "trueup_rounds", "trueup_watermarks")


@app.command()
def main(
    items: Annotated[int, typer.Option(help="Items (recorded rows).")] = 1_000_000,
    rows: Annotated[int, typer.Option(help="Usage logs (source rows).")] = 20_000_000,
    drift: Annotated[float, typer.Option(help="Share of items whose deduction never ran.")] = 0.1,
    new_rows: Annotated[int, typer.Option(help="Logs arriving between rounds.")] = NEW_ROWS,
    repeat: Annotated[int, typer.Option(help="Rounds of each kind.")] = 3,
    overlap: Annotated[
        int, typer.Option(help="Seconds of overlap (each repeat re-checks the keys of the last N s).")
    ] = 0,
    url: Annotated[str, typer.Option(envvar="TRUEUP_BENCH_URL", help="PostgreSQL database.")] = bench_check.DEFAULT_URL,
) -> None:
    """Time an incremental sync round beside a full check after `new_rows` new source rows."""
    scale = bench_check.Scale(items, rows, drift)
    engine = bench_check.ensure_data(make_url(url), scale)
    schema_url = engine.url.render_as_string(hide_password=False)
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE INDEX IF NOT EXISTS ix_usage_logs_logged_at ON usage_logs (logged_at)"))
        connection.execute(sa.text("ANALYZE usage_logs"))
    config = parse_config(_config(schema_url))
    options = SyncOptions(overlap=timedelta(seconds=overlap))
    results = {}
    try:
        results["key index"] = _measure(engine, config, options, items, new_rows, repeat)
        _covering_index(engine, create=True)
        results["covering index"] = _measure(engine, config, options, items, new_rows, repeat)
    finally:
        _covering_index(engine, create=False)
    _report(scale, new_rows, results)


class Measured(NamedTuple):
    incremental: list[float]
    full: list[float]
    checked: list[int]


def _measure(
    engine: sa.Engine, config: Config, options: SyncOptions, items: int, new_rows: int, repeat: int
) -> Measured:
    """`repeat` pairs of (incremental round after `new_rows` new logs, full check), from a fresh watermark."""
    trueup_engine = open_engine(engine.url.render_as_string(hide_password=False))
    before = _max_log_id(engine)
    measured = Measured([], [], [])
    try:
        _drop_sync_tables(engine)
        run_round(trueup_engine, config, "diapers", options, full=True)  # the watermark: now
        for _ in range(repeat):
            touched = _new_logs(engine, items, new_rows)
            started = time.perf_counter()
            result = run_round(trueup_engine, config, "diapers", options, full=False)
            measured.incremental.append(time.perf_counter() - started)
            assert result.kind == "incremental", result
            missed = touched - {str(d.key[0]) for d in result.drift}
            assert not missed, (
                f"{len(missed)} of {len(touched)} items given a new log were not found drifted: {sorted(missed)[:3]}"
            )
            measured.checked.append(result.checked)
            started = time.perf_counter()
            with trueup_engine.connect() as connection:
                report = CheckRun(connection, config, keep=0, with_checks=False).report()
            measured.full.append(time.perf_counter() - started)
            assert report.rules[0].drifted >= result.drifted
    finally:
        with engine.begin() as connection:
            connection.execute(sa.text("DELETE FROM usage_logs WHERE id > :id"), {"id": before})
        _drop_sync_tables(engine)
        trueup_engine.dispose()
    return measured


def _covering_index(engine: sa.Engine, *, create: bool) -> None:
    """Build (and vacuum, so index-only scans skip the heap) or drop the covering index on the logs."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        if create:
            console.print("building the covering index ...")
            connection.execute(sa.text("SET maintenance_work_mem = '512MB'"))
            connection.execute(sa.text(COVERING))
            connection.execute(sa.text("VACUUM ANALYZE usage_logs"))
        else:
            connection.execute(sa.text("DROP INDEX IF EXISTS ix_usage_logs_item_covering"))


def _config(url: str) -> dict:
    import tomllib

    return {"database": {"url": url}, **tomllib.loads(usage_logs.CONFIG)}


def _new_logs(engine: sa.Engine, items: int, count: int) -> set[str]:
    """`count` diaper changes on random items, stamped now, never deducted: drift for the round to find."""
    with engine.begin() as connection:
        sample = sa.text("SELECT id FROM inventory_items TABLESAMPLE BERNOULLI(:pct) LIMIT :n")
        ids = connection.execute(sample, {"pct": min(100.0, 300.0 * count / items), "n": count}).scalars().all()
        connection.execute(
            sa.text(
                "INSERT INTO usage_logs (inventory_item_id, usage_type, quantity_used, is_deleted, logged_at) "
                "SELECT i, 'diaper_change', 1, false, localtimestamp FROM unnest(CAST(:ids AS uuid[])) AS i"
            ),
            {"ids": [str(i) for i in ids]},
        )
    return {str(i) for i in ids}


def _max_log_id(engine: sa.Engine) -> int:
    with engine.connect() as connection:
        return connection.scalar(sa.text("SELECT COALESCE(MAX(id), 0) FROM usage_logs"))


def _drop_sync_tables(engine: sa.Engine) -> None:
    with engine.begin() as connection:
        for table in SYNC_TABLES:
            connection.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))


def _report(scale: bench_check.Scale, new_rows: int, results: dict[str, Measured]) -> None:
    table = Table(title=f"bench-sync: {scale.items:,} items, {scale.rows:,} logs, {new_rows:,} new logs per round")
    for column in ("", "index layout", "median", "runs"):
        table.add_column(column, justify="right" if column in ("median", "runs") else "left")
    for layout, m in results.items():
        a, b = statistics.median(m.incremental), statistics.median(m.full)
        table.add_row("(a) incremental round", layout, f"{a:.3f} s", ", ".join(f"{x:.3f}" for x in m.incremental))
        table.add_row("(b) full check", layout, f"{b:.3f} s", ", ".join(f"{x:.3f}" for x in m.full))
        table.add_row(
            "keys checked by (a)", layout, f"{statistics.median(m.checked):,.0f}", ", ".join(map(str, m.checked))
        )
        table.add_row("(b)/(a) (goal ≥ 50)", layout, f"{b / a:.0f}×", "")
        table.add_row("(a) ≤ 1 s", layout, "met" if a <= 1 else "not met", "", end_section=True)
    Console().print(table)
    console.print(f"machine: {platform.machine()}, {os.cpu_count()} cores; load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    app()
