"""`make bench-cost-write`: `cost --write --apply` of 100,000 sale lines into PostgreSQL, beside a plain COPY floor.

The sales and lots are generated clean by bench_cost.py's generator (same seed)
and costed once per job; only the database write is timed. Each job runs in a
fresh interpreter against an empty database `trueup_bench_cost_write` (made
and dropped here), so its peak resident memory is its own:

* trueup: `store(..., apply=True)` — the run with its audit (every new row's
  image in `trueup_changes`), then the same write again, which finds nothing
  to change;
* floor: the same cogs and lots rows `COPY`ed into two plain tables in one
  transaction, with no staging, no comparison and no audit: what any write of
  these rows must at least cost.

Usage:

    flock /tmp/trueup-bench.lock make bench-cost-write
    python benchmarks/bench_cost_write.py --lines 20000 --repeat 1   # a quick run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import sqlalchemy as sa
from bench_cost import generate, peak_mib, run_job

ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
DATABASE = "trueup_bench_cost_write"
URL = f"postgresql+psycopg://postgres@127.0.0.1:5432/{DATABASE}"


def job_trueup(directory: Path) -> dict:
    from trueup.cost import compute
    from trueup.cost.store import store
    from trueup.db import open_engine

    result = compute(directory / "sales.csv", directory / "lots.csv")
    computed_mib = peak_mib()
    engine = open_engine(URL)
    with engine.connect() as connection:
        started = time.perf_counter()
        first = store(connection, result, apply=True)
        written = time.perf_counter()
        second = store(connection, result, apply=True)
        again = time.perf_counter()
    assert first.applied and not second.applied and second.changed == 0, (first, second)
    return {
        "seconds": written - started,
        "again_seconds": again - written,
        "lines": result.lines.height,
        "rows": {t.table: t.inserted for t in first.tables},
        "computed_mib": computed_mib,
    }


def job_floor(directory: Path) -> dict:
    from trueup.cost import compute
    from trueup.cost.store import _cogs_frame, _lots_frame, cogs_table, lots_table

    result = compute(directory / "sales.csv", directory / "lots.csv")
    computed_mib = peak_mib()
    frames = {"floor_cogs": (cogs_table("floor_cogs"), _cogs_frame(result)),
              "floor_lots": (lots_table("floor_lots"), _lots_frame(result))}  # fmt: skip
    engine = sa.create_engine(URL)
    with engine.begin() as connection:
        for table, _ in frames.values():
            table.create(connection)
    with psycopg.connect(URL.replace("+psycopg", "")) as connection:
        started = time.perf_counter()
        with connection.cursor() as cursor:
            for name, (_, frame) in frames.items():
                with cursor.copy(f"COPY {name} ({', '.join(frame.columns)}) FROM STDIN (FORMAT csv)") as copy:
                    for chunk in frame.iter_slices(5000):
                        copy.write(chunk.write_csv(include_header=False).encode())
        connection.commit()
        written = time.perf_counter()
    return {"seconds": written - started, "lines": result.lines.height, "computed_mib": computed_mib}


JOBS = {"trueup": job_trueup, "floor": job_floor}


def reset() -> None:
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DATABASE}")
        admin.execute(f"CREATE DATABASE {DATABASE}")


def drop() -> None:
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DATABASE}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=100_000, help="sale lines (and lots)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each job (the median is reported)")
    parser.add_argument("--job", choices=JOBS, help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.job:
        figures = JOBS[args.job](args.dir)
        figures["peak_mib"] = peak_mib()
        print(json.dumps(figures))
        return

    with psycopg.connect(ADMIN) as admin:
        server = admin.execute("SHOW server_version").fetchone()[0]
    print(
        f"trueup cost --write benchmark — {platform.node()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, PostgreSQL {server}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    )
    try:
        with tempfile.TemporaryDirectory(prefix="bench-cost-write-") as tmp:
            directory = Path(tmp)
            generate(directory, args.lines, max(args.lines // 10, 1), messy=False)
            trueup = run_job("trueup", directory, args.repeat, __file__, reset)
            floor = run_job("floor", directory, args.repeat, __file__, reset)
    finally:
        drop()
    lines = trueup["lines"]
    rows = ", ".join(f"{n:,} {t}" for t, n in trueup["rows"].items())
    print(f"{lines:,} sale lines costed; written: {rows}")
    print(
        f"  trueup     {trueup['seconds']:6.2f} s = {lines / trueup['seconds']:9,.0f} lines/s ({trueup['spread']}); "
        f"the same write again (nothing to change) {trueup['again_seconds']:.2f} s; peak {trueup['peak_mib']:.0f} MiB "
        f"({trueup['computed_mib']:.0f} MiB after costing) — goal ≥ 50,000 lines/s: "
        f"{'met' if lines / trueup['seconds'] >= 50_000 else 'MISSED'}"
    )
    print(
        f"  COPY floor {floor['seconds']:6.2f} s = {lines / floor['seconds']:9,.0f} lines/s ({floor['spread']}); "
        f"peak {floor['peak_mib']:.0f} MiB ({floor['computed_mib']:.0f} MiB after costing); "
        f"trueup takes {trueup['seconds'] / floor['seconds']:.1f}× the floor"
    )


if __name__ == "__main__":
    main()
