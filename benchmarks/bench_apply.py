"""bench-apply: 100,000 corrections on PostgreSQL, trueup beside two hand-written baselines.

    python benchmarks/bench_apply.py [--corrections 100000] [--repeat 3]

Data: `items(id, total, remaining)` with every item drifted, and `moves`
(three per item) that explain it: expected = total - Σ moves.qty.

  trueup   `trueup.apply()` in a child process, from a drifted table: plan (one
           aggregate pass), lock, recompute in the transaction, one UPDATE …
           JOIN, the audit with every pre-image, commit, verify.
  floor    the same corrections, already computed, as one hand-written
           `UPDATE items SET … FROM (VALUES …)` (no audit, no verify).
  per-row  one `UPDATE items SET remaining = %s WHERE id = %s` per correction,
           committed one by one as a `for item in items: item.save()` script does
           (sampled on 5,000 rows, extrapolated), and all in one transaction.

Every method starts from the same drifted table and must leave the same
corrected table. Times are the median of --repeat runs; peak RSS is the
trueup child's.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import textwrap
import time

import psycopg

ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
DATABASE = "trueup_bench_apply"
URL = f"postgresql://postgres@127.0.0.1:5432/{DATABASE}"

CHILD = textwrap.dedent(
    """
    import json, sys, time, resource, trueup
    import trueup.reconcile.apply  # imported before the clock starts, as psycopg is for the baselines
    from trueup.config import parse_config
    rule = {"name": "stock", "recorded": {"table": "items", "key": ["id"], "quantity": "remaining"},
            "expected": [{"table": "items", "key": ["id"], "quantity": "total"},
                         {"table": "moves", "key": ["item_id"], "quantity": "qty", "sign": -1}]}
    config = parse_config({"database": {"url": sys.argv[1]}, "rules": [rule]})
    phases, marks = {}, [("setup", time.perf_counter())]
    def phase(name):
        marks.append((name.split()[0], time.perf_counter()))
    started = time.perf_counter()
    result = trueup.apply(config, backup_dir=None, yes=True, phase=phase)
    elapsed = time.perf_counter() - started
    marks.append(("end", time.perf_counter()))
    for (name, at), (_, until) in zip(marks, marks[1:]):
        phases[name] = phases.get(name, 0) + until - at
    assert result.status == "verified", result
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": elapsed, "changed": result.changed, "rss_kb": rss, "phases": phases}))
    """
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corrections", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    prepare(args.corrections)
    truth = corrected_state()

    trueup_runs, floor_runs, row_runs, phase_runs, rss = [], [], [], [], 0
    for _ in range(args.repeat):
        reset()
        child = subprocess.run([sys.executable, "-c", CHILD, URL], capture_output=True, text=True, check=True)
        outcome = json.loads(child.stdout)
        assert outcome["changed"] == args.corrections, outcome
        assert current_state() == truth
        trueup_runs.append(outcome["seconds"])
        phase_runs.append(outcome["phases"])
        rss = max(rss, outcome["rss_kb"])

        reset()
        floor_runs.append(floor_update(args.corrections))
        assert current_state() == truth

        reset()
        row_runs.append(per_row_updates(args.corrections))
        assert current_state() == truth

    reset()
    committed = per_row_commits(args.corrections, sample=5000)
    phases = {name: statistics.median(p[name] for p in phase_runs) for name in phase_runs[0]}
    report(
        args,
        statistics.median(trueup_runs),
        statistics.median(floor_runs),
        statistics.median(row_runs),
        committed,
        phases,
        rss,
    )


def prepare(corrections: int) -> None:
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone():
            admin.execute(f"CREATE DATABASE {DATABASE}")
    with psycopg.connect(URL, autocommit=True) as db:
        exists = db.execute("SELECT to_regclass('items') IS NOT NULL").fetchone()[0]
        if exists and db.execute("SELECT COUNT(*) FROM items").fetchone()[0] == corrections:
            return
        print(f"generating {corrections:,} items and {3 * corrections:,} moves ...", file=sys.stderr)
        db.execute("DROP TABLE IF EXISTS items, moves, trueup_runs, trueup_changes")
        db.execute("CREATE TABLE items (id integer PRIMARY KEY, total integer NOT NULL, remaining integer NOT NULL)")
        db.execute("CREATE TABLE moves (id bigserial PRIMARY KEY, item_id integer NOT NULL, qty integer NOT NULL)")
        db.execute("INSERT INTO items SELECT g, 1000, 1000 FROM generate_series(1, %s) g", (corrections,))
        db.execute(
            "INSERT INTO moves (item_id, qty) SELECT g, 1 + (g * 7 + k) %% 5 FROM generate_series(1, %s) g, "
            "generate_series(1, 3) k",
            (corrections,),
        )
        db.execute("CREATE INDEX moves_item ON moves (item_id)")
        db.execute("VACUUM ANALYZE items")
        db.execute("VACUUM ANALYZE moves")


def reset() -> None:
    """Every item drifted again (its moves never deducted), the audit emptied, dead rows vacuumed."""
    with psycopg.connect(URL, autocommit=True) as db:
        db.execute("UPDATE items SET remaining = total")
        for table in ("trueup_changes", "trueup_runs"):
            if db.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()[0]:
                db.execute(f"TRUNCATE {table}")
        db.execute("VACUUM ANALYZE items")


def corrected_state() -> list[tuple[int, int]]:
    with psycopg.connect(URL) as db:
        return db.execute(
            "SELECT i.id, i.total - m.used FROM items i JOIN (SELECT item_id, SUM(qty) AS used FROM moves "
            "GROUP BY item_id) m ON m.item_id = i.id ORDER BY i.id"
        ).fetchall()


def current_state() -> list[tuple[int, int]]:
    with psycopg.connect(URL) as db:
        return db.execute("SELECT id, remaining FROM items ORDER BY id").fetchall()


def floor_update(corrections: int) -> float:
    values = ",".join(f"({k},{v})" for k, v in corrected_state())
    with psycopg.connect(URL) as db:
        started = time.perf_counter()
        db.execute(
            f"UPDATE items AS i SET remaining = v.expected FROM (VALUES {values}) AS v(id, expected) WHERE i.id = v.id"
        )
        db.commit()
        return time.perf_counter() - started


def per_row_updates(corrections: int) -> float:
    rows = corrected_state()
    with psycopg.connect(URL) as db:
        started = time.perf_counter()
        with db.cursor() as cursor:
            for key, expected in rows:
                cursor.execute("UPDATE items SET remaining = %s WHERE id = %s", (expected, key))
        db.commit()
        return time.perf_counter() - started


def per_row_commits(corrections: int, sample: int) -> float:
    """One UPDATE and one COMMIT per row (a Django `obj.save()` loop): a sample, extrapolated."""
    rows = corrected_state()[:sample]
    with psycopg.connect(URL, autocommit=True) as db:
        started = time.perf_counter()
        for key, expected in rows:
            db.execute("UPDATE items SET remaining = %s WHERE id = %s", (expected, key))
        return (time.perf_counter() - started) * corrections / len(rows)


def report(
    args: argparse.Namespace,
    trueup_s: float,
    floor_s: float,
    row_s: float,
    committed_s: float,
    phases: dict[str, float],
    rss_kb: int,
) -> None:
    with psycopg.connect(URL) as db:
        version = db.execute("SHOW server_version").fetchone()[0]
    print(f"\nbench-apply: {args.corrections:,} corrections on PostgreSQL {version}, median of {args.repeat}")
    print(f"machine: {platform.machine()}, {_cores()} cores, Python {platform.python_version()}")
    print(f"  trueup apply (plan, lock, recompute, update, audit, verify)  {trueup_s:8.3f} s")
    print("    of which " + ", ".join(f"{name} {seconds:.3f} s" for name, seconds in phases.items()))
    print(f"  (a) floor: one UPDATE … FROM (VALUES …), precomputed          {floor_s:8.3f} s")
    print(f"  (b) one UPDATE per row and a COMMIT each (sampled, extrapolated) {committed_s:8.3f} s")
    print(f"  (b') one UPDATE per row, all in one transaction               {row_s:8.3f} s")
    print(f"  trueup / floor = {trueup_s / floor_s:.2f}   (goal ≤ 3)")
    written = trueup_s - phases.get("verifying", 0)  # the floor checks nothing after it writes
    print(f"  trueup until commit (no verify) / floor = {written / floor_s:.2f}")
    print(f"  per-row / trueup = {committed_s / trueup_s:.1f} (b), {row_s / trueup_s:.1f} (b')   (goal ≥ 10)")
    print(f"  trueup peak RSS = {rss_kb / 1024:.0f} MB")


def _cores() -> int:
    import os

    return os.cpu_count() or 0


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_NOFILE, resource.getrlimit(resource.RLIMIT_NOFILE))
    main()
