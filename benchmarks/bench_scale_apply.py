"""`make bench-scale`, the repair half: `trueup apply --chunk-size N` beside the one-transaction apply,
each with a live writer beside it, then a chunked apply killed at half its chunks and resumed.

    python benchmarks/bench_scale_apply.py --corrections 1000000 --chunk-size 10000

Data (PostgreSQL, database `test`, one schema per run, each built afresh with `generate_series`):
`items(id, total, remaining)` where every item's `remaining` is 1000 too high, and `moves(item_id, qty)`,
two per item, that explain it: expected = total − Σ moves.qty. So there are exactly N corrections.

  (a) one transaction   `trueup apply`, schema applybench_one
  (b) chunked           `trueup apply --chunk-size 10000`, schema applybench_chunked
  (c) resume            `trueup apply --chunk-size 10000`, schema applybench_resume, SIGKILLed once half
                        its chunks have committed (watched in `trueup_chunks`), then `trueup apply --resume RUN`

Beside (a) and (b) a writer updates random items, one single-row `UPDATE … SET total = total + 1,
remaining = remaining + 1` per transaction (a receipt: it moves the figure and keeps the drift), with
`lock_timeout` off, every 10 ms, and records how long each statement took: the longest is how long a
live sale waited for the repair's locks. Each apply is the real CLI in its own process (`--no-backup`:
the pre-images are in the audit either way; `--yes --quiet --format json`). Reported: wall time, the
writer's longest wait and its count of writes, the apply's peak RSS; every run must leave no drift.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from stock_rule import stock_rule  # benchmarks/, beside this script

SERVER = "postgresql://postgres@127.0.0.1:5432/test"
TRUEUP = [sys.executable, "-m", "trueup.cli"]
RULE = stock_rule("moves")
DRIFTED = """
SELECT COUNT(*) FROM items i LEFT JOIN (SELECT item_id, SUM(qty) AS used FROM moves GROUP BY item_id) m
    ON m.item_id = i.id
WHERE i.remaining <> i.total - COALESCE(m.used, 0)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corrections", type=int, default=1_000_000)
    parser.add_argument("--chunk-size", type=int, default=10_000)
    args = parser.parse_args()
    n, size = args.corrections, args.chunk_size
    header(n)
    with tempfile.TemporaryDirectory(prefix="applybench_") as work:
        configs = {schema: config(Path(work), schema) for schema in ("one", "chunked", "resume")}
        one = beside_writer("one", n, configs["one"], [])
        print_run("(a) one transaction", one)
        chunked = beside_writer("chunked", n, configs["chunked"], ["--chunk-size", str(size)])
        print_run(f"(b) --chunk-size {size:,}", chunked)
        met = "met" if chunked["longest_wait"] <= 1 else "NOT met"
        print(
            f"  chunked / one transaction = {chunked['seconds'] / one['seconds']:.2f} (time); "
            f"chunked longest wait {chunked['longest_wait']:.3f} s: goal ≤ 1 s {met}",
            flush=True,
        )
        print_resumed(killed_and_resumed("resume", n, size, configs["resume"]))
    with psycopg.connect(SERVER, autocommit=True) as db:  # the copies are rebuilt by every run: none is kept
        for schema in configs:
            db.execute(f"DROP SCHEMA applybench_{schema} CASCADE")


def schema_url(schema: str) -> str:
    return f"{SERVER}?options=-csearch_path%3Dapplybench_{schema}"


def config(work: Path, schema: str) -> Path:
    path = work / f"{schema}.toml"
    path.write_text(f'[database]\nurl = "{schema_url(schema).replace("postgresql:", "postgresql+psycopg:")}"\n{RULE}')
    return path


def build(schema: str, n: int) -> None:
    """A fresh schema with N drifted items (set-based, in the database)."""
    print(f"building applybench_{schema}: {n:,} items, {2 * n:,} moves ...", file=sys.stderr)
    with psycopg.connect(SERVER, autocommit=True) as db:
        for attempt in range(3):  # autovacuum on the old copy's tables can deadlock with the DROP
            try:
                db.execute(f"DROP SCHEMA IF EXISTS applybench_{schema} CASCADE")
                break
            except psycopg.errors.DeadlockDetected:
                if attempt == 2:
                    raise
        db.execute(f"CREATE SCHEMA applybench_{schema}")
    with psycopg.connect(schema_url(schema), autocommit=True) as db:
        db.execute(
            "CREATE TABLE items (id integer PRIMARY KEY, total integer NOT NULL, remaining integer NOT NULL) "
            "WITH (autovacuum_enabled = off)"
        )
        db.execute(
            "CREATE TABLE moves (id bigserial PRIMARY KEY, item_id integer NOT NULL, qty integer NOT NULL) "
            "WITH (autovacuum_enabled = off)"
        )
        db.execute(
            "INSERT INTO moves (item_id, qty) SELECT g, 200 + k * 300 FROM generate_series(1, %s) g, "
            "generate_series(1, 2) k",
            (n,),
        )  # 500 + 800 = 1300 used per item
        db.execute("INSERT INTO items SELECT g, 5000, 5000 - 1300 + 1000 FROM generate_series(1, %s) g", (n,))
        db.execute("CREATE INDEX moves_item ON moves (item_id)")
        db.execute("VACUUM ANALYZE items")
        db.execute("VACUUM ANALYZE moves")
        assert db.execute(DRIFTED).fetchone()[0] == n


class Writer(threading.Thread):
    """Receipts on random items, one committed UPDATE each, lock_timeout off; the longest wait."""

    def __init__(self, schema: str, n: int):
        super().__init__(daemon=True)
        self.url, self.n = schema_url(schema), n
        self.stop = threading.Event()
        self.longest, self.writes = 0.0, 0

    def run(self) -> None:
        pick = random.Random(14)
        with psycopg.connect(self.url, autocommit=True) as db:
            db.execute("SET lock_timeout = 0")
            while not self.stop.wait(0.01):
                started = time.perf_counter()
                db.execute(
                    "UPDATE items SET total = total + 1, remaining = remaining + 1 WHERE id = %s",
                    (pick.randint(1, self.n),),
                )
                self.longest = max(self.longest, time.perf_counter() - started)
                self.writes += 1


def trueup(config_path: Path, *args: str) -> subprocess.Popen:
    command = [*TRUEUP, "apply", "--config", str(config_path), "--no-backup", "--yes", "--quiet", "--format", "json"]
    return subprocess.Popen([*command, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finished(child: subprocess.Popen) -> tuple[dict, float]:
    """The child's JSON document and its peak RSS (MiB), once it has exited 0."""
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    out, err = child.communicate()
    assert child.returncode == 0, (child.returncode, err)
    return json.loads(out), usage.ru_maxrss / 1024


def beside_writer(schema: str, n: int, config_path: Path, args: list[str]) -> dict:
    build(schema, n)
    writer = Writer(schema, n)
    writer.start()
    started = time.perf_counter()
    document, rss = finished(trueup(config_path, *args))
    seconds = time.perf_counter() - started
    writer.stop.set()
    writer.join()
    assert document["changed"] == n, document
    assert drifted(schema) == 0
    return {"seconds": seconds, "longest_wait": writer.longest, "writes": writer.writes, "rss_mib": rss}


def killed_and_resumed(schema: str, n: int, size: int, config_path: Path) -> dict:
    build(schema, n)
    total = -(-n // size)
    child = trueup(config_path, "--chunk-size", str(size))
    started = time.perf_counter()
    with psycopg.connect(schema_url(schema), autocommit=True) as db:
        while (done := committed_chunks(db)) < total // 2:
            assert child.poll() is None, child.communicate()
            time.sleep(0.05)  # the database is watched, not the clock: this only paces the polling
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        killed_at = time.perf_counter() - started
        done = committed_chunks(db)
        run_id = db.execute("SELECT MAX(id) FROM trueup_runs").fetchone()[0]
        left = drifted(schema)
    resumed = time.perf_counter()
    document, rss = finished(trueup(config_path, "--resume", str(run_id)))
    seconds = time.perf_counter() - resumed
    assert drifted(schema) == 0
    assert document["changed"] == left, document  # exactly the keys the killed run had not committed
    with psycopg.connect(schema_url(schema)) as db:
        assert db.execute("SELECT updated FROM trueup_runs WHERE id = %s", (run_id,)).fetchone()[0] == n
    return {"killed_at": killed_at, "done": done, "total": total, "left": left, "seconds": seconds, "rss_mib": rss}


def committed_chunks(db: psycopg.Connection) -> int:
    if not db.execute("SELECT to_regclass('trueup_chunks') IS NOT NULL").fetchone()[0]:
        return 0
    return db.execute("SELECT COUNT(*) FROM trueup_chunks WHERE committed_at IS NOT NULL").fetchone()[0]


def drifted(schema: str) -> int:
    with psycopg.connect(schema_url(schema)) as db:
        return db.execute(DRIFTED).fetchone()[0]


def header(n: int) -> None:
    with psycopg.connect(SERVER) as db:
        version = db.execute("SHOW server_version").fetchone()[0]
    print(f"bench-scale (apply): {n:,} corrections on PostgreSQL {version}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores (shared), Python {platform.python_version()}",
        flush=True,
    )


def print_run(name: str, run: dict) -> None:
    print(
        f"  {name:24} {run['seconds']:8.1f} s   writer's longest wait {run['longest_wait']:7.3f} s "
        f"({run['writes']:,} writes)   peak RSS {run['rss_mib']:,.0f} MiB",
        flush=True,
    )


def print_resumed(resumed: dict) -> None:
    print(
        f"  (c) killed after {resumed['killed_at']:.1f} s with {resumed['done']}/{resumed['total']} chunks committed "
        f"({resumed['left']:,} keys still drifted); `apply --resume` {resumed['seconds']:.1f} s, "
        f"peak RSS {resumed['rss_mib']:,.0f} MiB; no drift left",
        flush=True,
    )


if __name__ == "__main__":
    main()
