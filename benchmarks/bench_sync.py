"""bench-sync: an incremental sync round beside a full check, on the check benchmark's database.

    make bench-sync                                               # 1,000,000 items, 20,000,000 logs
    make bench-sync BENCH_ARGS="--items 100000 --rows 2000000"    # a tenth

It reuses (or generates) bench-check's data: the usage_logs shape, items
minus their diaper-change logs, in database `trueup_bench`. Then:

1. a full round sets the watermark (the newest `logged_at`);
2. 1,000 new usage logs arrive for random items, stamped now, never deducted;
3. (a) an incremental round: the keys touched since the watermark (minus the
   overlap), checked and recorded; (b) a full check of the rule, every
   drifted key streamed. Both in this process, each --repeat times.

The overlap is 10 s here, not the 5-minute default: repeats are about 20 s
apart (the full check runs between them), and with 5 minutes each round
would check the earlier repeats' 1,000 keys again. In production, rounds 5
minutes apart with a 5-minute overlap check about twice the keys touched
since the last round: the price of catching late commits.

Goals (issue 6): (a) ≤ 1 s and (b)/(a) ≥ 50. Incremental rounds need an
index on the time column (the README says so); this creates it once. The new
logs and the sync tables are removed afterwards, so bench-check's data stays
as generated.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from datetime import timedelta
from typing import Annotated

import sqlalchemy as sa
import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import make_url

sys.path.insert(0, os.path.dirname(__file__))
import bench_check

from trueup.config import parse_config
from trueup.db import open_engine
from trueup.examples import usage_logs
from trueup.reconcile.check import CheckRun
from trueup.reconcile.sync import SyncOptions, run_round

console = Console(stderr=True)
app = typer.Typer(add_completion=False)
NEW_ROWS = 1000
SYNC_TABLES = ("trueup_drift_history", "trueup_rounds", "trueup_watermarks")


@app.command()
def main(
    items: Annotated[int, typer.Option(help="Items (recorded rows).")] = 1_000_000,
    rows: Annotated[int, typer.Option(help="Usage logs (source rows).")] = 20_000_000,
    drift: Annotated[float, typer.Option(help="Share of items whose deduction never ran.")] = 0.1,
    new_rows: Annotated[int, typer.Option(help="Logs arriving between rounds.")] = NEW_ROWS,
    repeat: Annotated[int, typer.Option(help="Rounds of each kind.")] = 3,
    overlap: Annotated[int, typer.Option(help="Seconds of overlap (repeats are ~20 s apart at full size).")] = 10,
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
    trueup_engine = open_engine(schema_url)
    before = _max_log_id(engine)
    incremental, full, checked = [], [], []
    try:
        _drop_sync_tables(engine)
        options = SyncOptions(overlap=timedelta(seconds=overlap))
        run_round(trueup_engine, config, "diapers", options, full=True)  # the watermark: now
        for _ in range(repeat):
            touched = _new_logs(engine, items, new_rows)
            started = time.perf_counter()
            result = run_round(trueup_engine, config, "diapers", options, full=False)
            incremental.append(time.perf_counter() - started)
            assert result.kind == "incremental", result
            missed = touched - {str(d.key[0]) for d in result.drift}
            assert not missed, (
                f"{len(missed)} of {len(touched)} items given a new log were not found drifted: {sorted(missed)[:3]}"
            )
            checked.append(result.checked)
            started = time.perf_counter()
            with trueup_engine.connect() as connection:
                report = CheckRun(connection, config, keep=0, with_checks=False).report()
            full.append(time.perf_counter() - started)
            assert report.rules[0].drifted >= result.drifted
    finally:
        with engine.begin() as connection:
            connection.execute(sa.text("DELETE FROM usage_logs WHERE id > :id"), {"id": before})
        _drop_sync_tables(engine)
        trueup_engine.dispose()
    _report(scale, new_rows, incremental, full, checked)


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


def _report(
    scale: bench_check.Scale, new_rows: int, incremental: list[float], full: list[float], checked: list[int]
) -> None:
    a, b = statistics.median(incremental), statistics.median(full)
    table = Table(title=f"bench-sync: {scale.items:,} items, {scale.rows:,} logs, {new_rows:,} new logs per round")
    for column in ("", "median", "runs"):
        table.add_column(column, justify="right" if column else "left")
    table.add_row("(a) incremental round", f"{a:.3f} s", ", ".join(f"{x:.3f}" for x in incremental))
    table.add_row("(b) full check", f"{b:.3f} s", ", ".join(f"{x:.3f}" for x in full))
    table.add_row("keys checked by (a)", f"{statistics.median(checked):,.0f}", ", ".join(map(str, checked)))
    table.add_row("(b)/(a) (goal ≥ 50)", f"{b / a:.0f}×", "")
    table.add_row("(a) ≤ 1 s", "met" if a <= 1 else "not met", "")
    Console().print(table)
    console.print(f"machine: {platform.machine()}, {os.cpu_count()} cores; load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    app()
