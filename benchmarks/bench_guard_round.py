"""bench-guard (round): a capture round beside the time-column round and a full check, after 1,000 sales.

    make bench-guard                                                    # 1,000,000 items, 20,000,000 logs
    .venv/bin/python benchmarks/bench_guard_round.py --items 250000 --rows 5000000

It reuses (or generates) bench-check's data (`bench_check.ensure_data`): the
usage_logs shape, items minus their diaper-change logs, only the key index on
`usage_logs.inventory_item_id` (no covering index). Two rules over the same
tables: `diapers` as the example has it (its logs have a `time` column,
`logged_at`, so its incremental rounds collect the keys of new logs) and
`diapers_captured`, the same rule without `time`, guarded by `trueup guard
install --mode capture` (its incremental rounds check the keys the triggers
queued in `trueup_dirty`). Then, `--repeat` times:

1. 1,000 sales, each its own transaction as an application makes them: INSERT
   a diaper-change log for a random item, UPDATE the item's
   `quantity_remaining` by the same 1; every tenth sale skips the UPDATE (the
   bug), so the rounds have drift to find;
2. (a) the capture round of `diapers_captured`, (b) the time-column round of
   `diapers`, (c) a full check of `diapers`, every drifted key streamed.

Each round must check every sold item and find every skipped deduction (the
run stops otherwise). Afterwards the sales are taken back (logs deleted,
figures restored in one UPDATE), the guard removed and trueup's tables
dropped, so bench-check's data stays as generated.

Goal (issue 13): (c)/(a) >= 200.
"""

from __future__ import annotations

import os
import platform
import random
import resource
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Annotated, NamedTuple

import sqlalchemy as sa
import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import Engine, make_url

sys.path.insert(0, os.path.dirname(__file__))
import bench_check
import bench_sync

from trueup import guard
from trueup.config import Config, parse_config
from trueup.db import open_engine
from trueup.reconcile.check import CheckRun
from trueup.reconcile.sync import SyncOptions, run_round

console = Console(stderr=True)
app = typer.Typer(add_completion=False)
TIMED, CAPTURED = "diapers", "diapers_captured"
BUGGY_EVERY = 10  # every tenth sale forgets to deduct
TRUEUP_TABLES = (
    *bench_sync.SYNC_TABLES,
    *("trueup_open_drift", "trueup_dirty", "trueup_changes", "trueup_chunks", "trueup_chunked_runs", "trueup_runs"),
)
GOAL = 200
SALE = sa.text(
    "INSERT INTO usage_logs (inventory_item_id, usage_type, quantity_used, is_deleted, logged_at) "
    "VALUES (:item, 'diaper_change', 1, false, localtimestamp)"
)
DEDUCT = sa.text("UPDATE inventory_items SET quantity_remaining = quantity_remaining - 1 WHERE id = :item")


@app.command()
def main(
    items: Annotated[int, typer.Option(help="Items (recorded rows).")] = 1_000_000,
    rows: Annotated[int, typer.Option(help="Usage logs (source rows).")] = 20_000_000,
    drift: Annotated[float, typer.Option(help="Share of items whose deduction never ran (0: a repaired shop).")] = 0.0,
    sales: Annotated[int, typer.Option(help="Sales before each round.")] = 1000,
    repeat: Annotated[int, typer.Option(help="Rounds of each kind.")] = 3,
    url: Annotated[str, typer.Option(envvar="TRUEUP_BENCH_URL", help="PostgreSQL database.")] = bench_check.DEFAULT_URL,
) -> None:
    """Time a capture round beside a time-column round and a full check after `sales` sales."""
    scale = bench_check.Scale(items, rows, drift)
    engine = bench_check.ensure_data(make_url(url), scale)
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE INDEX IF NOT EXISTS ix_usage_logs_logged_at ON usage_logs (logged_at)"))
        connection.execute(sa.text("ANALYZE usage_logs"))
    config = parse_config(_config(engine.url.render_as_string(hide_password=False)))
    load = [os.getloadavg()[0]]
    measured = _measure(engine, config, items, sales, repeat)
    load.append(os.getloadavg()[0])
    _report(scale, sales, measured, load)


class Measured(NamedTuple):
    capture: list[float]
    timed: list[float]
    full: list[float]
    checked: list[tuple[int, int]]  # keys checked by (a), (b)


def _measure(engine: Engine, config: Config, items: int, sales: int, repeat: int) -> Measured:
    trueup_engine = open_engine(engine.url.render_as_string(hide_password=False))
    options = SyncOptions(overlap=timedelta(0))
    before = bench_sync._max_log_id(engine)
    deducted: list[str] = []
    measured = Measured([], [], [], [])
    try:
        _drop_trueup_tables(engine)
        with trueup_engine.connect() as connection:
            guard.install(connection, config, CAPTURED, "capture", yes=True, triggered_by="bench")
        run_round(trueup_engine, config, TIMED, options, full=True)  # the watermark: now
        for _ in range(repeat):
            sold, forgotten = _sell(engine, items, sales, deducted)
            capture = _timed_round(trueup_engine, config, CAPTURED, options, sold, forgotten, measured.capture)
            timed = _timed_round(trueup_engine, config, TIMED, options, sold, forgotten, measured.timed)
            measured.checked.append((capture, timed))
            started = time.perf_counter()
            with trueup_engine.connect() as connection:
                CheckRun(connection, config, rules=[TIMED], keep=0, with_checks=False).report()
            measured.full.append(time.perf_counter() - started)
    finally:
        with trueup_engine.connect() as connection:
            if any(g.rule == CAPTURED for g in guard.status(connection)):
                guard.remove(connection, config, CAPTURED, yes=True, triggered_by="bench")
        _take_back(engine, before, deducted)
        _drop_trueup_tables(engine)
        trueup_engine.dispose()
    return measured


def _sell(engine: Engine, items: int, count: int, deducted: list[str]) -> tuple[set[str], set[str]]:
    """`count` sales of random items, one transaction each; every BUGGY_EVERY-th forgets the UPDATE.
    The sold items, and those whose deduction was forgotten; `deducted` gains each item deducted."""
    with engine.connect() as connection:
        sample = sa.text("SELECT CAST(id AS text) FROM inventory_items TABLESAMPLE BERNOULLI(:pct) LIMIT :n")
        chosen = connection.execute(sample, {"pct": min(100.0, 300.0 * count / items), "n": count}).scalars().all()
        connection.rollback()
        picks = random.Random(len(deducted)).choices(chosen, k=count)
        forgotten = set()
        for n, item in enumerate(picks):
            with connection.begin():
                connection.execute(SALE, {"item": item})
                if n % BUGGY_EVERY == BUGGY_EVERY - 1:
                    forgotten.add(item)
                else:
                    connection.execute(DEDUCT, {"item": item})
                    deducted.append(item)
    return set(picks), forgotten


def _timed_round(
    engine: Engine, config: Config, rule: str, options: SyncOptions, sold: set[str], forgotten: set[str], out: list
) -> int:
    """Time an incremental round of `rule`; check it looked at every sold item and found every forgotten
    deduction; the keys it checked."""
    started = time.perf_counter()
    result = run_round(engine, config, rule, options, full=False)
    out.append(time.perf_counter() - started)
    assert result.kind == "incremental", result
    found = {str(d.key[0]) for d in result.drift}
    missed = forgotten - found
    assert not missed, f"{rule}: {len(missed)} of {len(forgotten)} forgotten deductions not found: {sorted(missed)[:3]}"
    assert result.checked >= len(sold), f"{rule}: checked {result.checked} keys, {len(sold)} items were sold"
    return result.checked


def _take_back(engine: Engine, before: int, deducted: list[str]) -> None:
    """Delete the sales' logs and give back what they deducted, in one transaction (the guard removed)."""
    with engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM usage_logs WHERE id > :id"), {"id": before})
        connection.execute(
            sa.text(
                "UPDATE inventory_items AS i SET quantity_remaining = i.quantity_remaining + d.n "
                "FROM (SELECT CAST(item AS uuid) AS item, count(*) AS n FROM unnest(CAST(:items AS text[])) AS item "
                "GROUP BY item) AS d WHERE i.id = d.item"
            ),
            {"items": deducted},
        )


def _drop_trueup_tables(engine: Engine) -> None:
    with engine.begin() as connection:
        for table in TRUEUP_TABLES:
            connection.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))


def _config(url: str) -> dict:
    """The example's rule, and the same rule without its time column (the one the capture guard keeps)."""
    config = bench_sync._config(url)
    timed = config["rules"][0]
    captured = {**timed, "name": CAPTURED, "expected": [{**s} for s in timed["expected"]]}
    for source in captured["expected"]:
        source.pop("time", None)
    return {**config, "rules": [timed, captured]}


def _report(scale: bench_check.Scale, sales: int, m: Measured, load: list[float]) -> None:
    title = f"bench-guard round: {scale.items:,} items, {scale.rows:,} logs, {sales:,} sales per round"
    table = Table(title=title)
    for column in ("", "median", "runs"):
        table.add_column(column, justify="left" if not column else "right")
    rows = [("(a) capture round", m.capture), ("(b) time-column round", m.timed), ("(c) full check", m.full)]
    for name, runs in rows:
        table.add_row(name, f"{statistics.median(runs):.3f} s", ", ".join(f"{x:.3f}" for x in runs))
    table.add_row("keys checked by (a), (b)", "", ", ".join(f"{a}/{b}" for a, b in m.checked))
    a, b, c = (statistics.median(x) for x in (m.capture, m.timed, m.full))
    table.add_row(f"(c)/(a) (goal ≥ {GOAL})", f"{c / a:.0f}×", "met" if c / a >= GOAL else "not met")
    table.add_row("(c)/(b)", f"{c / b:.0f}×", "")
    Console().print(table)
    when = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    loads = "–".join(f"{x:.1f}" for x in load)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    console.print(f"{when}, {platform.node()}, {os.cpu_count()} cores; load average {loads} (start–end)")
    console.print(f"peak RSS of this process (rounds and check): {peak:.0f} MiB")


if __name__ == "__main__":
    app()
