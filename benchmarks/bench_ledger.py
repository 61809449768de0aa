"""`make bench-ledger`: ledger postings per second, beside the `eventsourcing` library on the same PostgreSQL.

Runs, each timed on its own fresh ledger:

* SQLite, single-movement transactions (receive, issue) one after another;
* SQLite, batched: one transaction moving many lots (a transfer over N lots), as movements/s;
* PostgreSQL, 1 and 8 writer processes, on a hot item (all writers on one item) and on cold
  items (each writer its own), single-movement issues and receives;
* `eventsourcing` (PyPI) on the same PostgreSQL database in the same run: an `Item` aggregate
  with Received/Issued events, loaded, changed and saved per posting (what an event-sourced
  application does), snapshotted every 50 events, 1 and 8 writers, hot (with retries on
  version conflicts) and cold.

Peak memory is the largest resident set of any process of the run. Usage:

    flock /tmp/trueup-bench.lock make bench-ledger [BENCH_ARGS="--seconds 20"]

Each run posts for a fixed time (default 10 s) and counts what it posted, so a
slow contender cannot stretch the run.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import resource
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar
from uuid import NAMESPACE_URL, UUID, uuid5

import sqlalchemy as sa
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import IntegrityError

from trueup.ledger import Ledger

ADMIN_URL = os.environ.get("TRUEUP_BENCH_POSTGRESQL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
DATABASE = "trueup_bench_ledger"
FORK = multiprocessing.get_context("fork")


def fresh_postgres(schema: str) -> str:
    """A clean schema in the benchmark database; its URL."""
    admin = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        if not connection.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": DATABASE}).first():
            connection.execute(sa.text(f'CREATE DATABASE "{DATABASE}"'))
    admin.dispose()
    url = sa.engine.make_url(ADMIN_URL).set(database=DATABASE)
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    return url.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)


def peak_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


# -- trueup ledger ------------------------------------------------------------------------------


def ledger_writer(url: str, item: str, seconds: float, start, results) -> None:
    with Ledger(url) as ledger:
        start.wait()
        done, deadline = 0, time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            if done % 2 == 0:
                ledger.receive(item, "shop", 2, unit_cost="1.25")
            else:
                ledger.issue(item, "shop", 1)
            done += 1
        results.put(done)


def run_writers(target, url: str, writers: int, hot: bool, seconds: float) -> float:
    """Transactions per second over all writers, each posting for `seconds` from a common start."""
    start, results = FORK.Barrier(writers + 1), FORK.Queue()
    procs = [
        FORK.Process(target=target, args=(url, "hot" if hot else f"cold-{w}", seconds, start, results))
        for w in range(writers)
    ]
    for proc in procs:
        proc.start()
    start.wait()
    began = time.perf_counter()
    done = sum(results.get(timeout=seconds + 600) for _ in procs)
    elapsed = time.perf_counter() - began
    for proc in procs:
        proc.join()
        assert proc.exitcode == 0, proc.exitcode
    return done / elapsed


def sqlite_single(seconds: float) -> float:
    with tempfile.TemporaryDirectory() as directory:
        return run_writers(ledger_writer, f"sqlite:///{directory}/bench.db", 1, False, seconds)


def sqlite_batched(lots: int, rounds: int) -> float:
    """Movements per second when each transaction moves `lots` lots (a transfer over all of them)."""
    with tempfile.TemporaryDirectory() as directory, Ledger(f"sqlite:///{directory}/bench.db") as ledger:
        for _ in range(lots):
            ledger.receive("bulk", "a", 1, unit_cost=1)
        began = time.perf_counter()
        for n in range(rounds):
            source, target = ("a", "b") if n % 2 == 0 else ("b", "a")
            moved = ledger.transfer("bulk", source, target, lots)
            assert len(moved.movements) == lots
        elapsed = time.perf_counter() - began
        assert ledger.verify().ok
    return lots * rounds / elapsed


def postgres_ledger(writers: int, hot: bool, seconds: float) -> float:
    url = fresh_postgres(f"ledger_{writers}_{'hot' if hot else 'cold'}")
    Ledger(url).close()
    rate = run_writers(ledger_writer, url, writers, hot, seconds)
    with Ledger(url) as ledger:
        assert ledger.verify().ok
    return rate


# -- eventsourcing ------------------------------------------------------------------------------


class Item(Aggregate):
    """The equivalent aggregate: an item's on-hand figure, changed only by its events."""

    @event("Created")
    def __init__(self, name: str):
        self.name, self.on_hand = name, 0

    @event("Received")
    def receive(self, qty: int, unit_cost: str) -> None:
        self.on_hand += qty

    @event("Issued")
    def issue(self, qty: int) -> None:
        if qty > self.on_hand:
            raise ValueError("insufficient stock")
        self.on_hand -= qty

    @classmethod
    def create_id(cls, name: str) -> UUID:
        return uuid5(NAMESPACE_URL, f"/items/{name}")


class Inventory(Application):
    """Snapshots every 50 events, so loading an item replays at most 50 of them: without
    snapshots each save would first replay the item's whole history, a baseline no careful
    eventsourcing user would run."""

    snapshotting_intervals: ClassVar = {Item: 50}


def eventsourcing_app(url: str, *, create_tables: bool = False) -> Application:
    parsed = sa.engine.make_url(url)
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": parsed.database, "POSTGRES_HOST": parsed.host, "POSTGRES_PORT": str(parsed.port or 5432),
        "POSTGRES_USER": parsed.username, "POSTGRES_PASSWORD": parsed.password or "",
        "POSTGRES_SCHEMA": parsed.query["options"].split("=", 1)[1],
        "CREATE_TABLE": "y" if create_tables else "n",  # writers racing to create them would collide
    }  # fmt: skip
    return Inventory(env=env)


def eventsourcing_writer(url: str, item: str, seconds: float, start, results) -> None:
    app = eventsourcing_app(url)
    identity = Item.create_id(item)
    if item != "hot":  # the hot item is created before the writers start
        app.save(Item(item))
    start.wait()
    done, deadline = 0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        aggregate = app.repository.get(identity)
        if done % 2 == 0:
            aggregate.receive(2, "1.25")
        else:
            aggregate.issue(1)
        try:
            app.save(aggregate)
            done += 1
        except IntegrityError:
            continue  # optimistic concurrency: another writer saved first; reload and retry
    results.put(done)


def postgres_eventsourcing(writers: int, hot: bool, seconds: float) -> float:
    url = fresh_postgres(f"es_{writers}_{'hot' if hot else 'cold'}")
    app = eventsourcing_app(url, create_tables=True)
    app.save(Item("hot"))
    app.close()
    return run_writers(eventsourcing_writer, url, writers, hot, seconds)


# -- report -------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10, help="how long each run posts")
    parser.add_argument("--lots", type=int, default=500, help="lots per batched transaction")
    parser.add_argument("--rounds", type=int, default=40, help="batched transactions")
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    rows: list[tuple[str, str, float, str]] = []
    single = sqlite_single(args.seconds)
    rows.append(("SQLite", "single-movement transactions, 1 writer", single, "tx/s"))
    batched = sqlite_batched(args.lots, args.rounds)
    rows.append(("SQLite", f"batched: {args.lots} movements per transaction", batched, "movements/s"))
    ratios = []
    for writers, hot in ((1, False), (8, False), (8, True)):
        label = f"{writers} writer(s), {'hot item' if hot else 'cold items'}"
        ours = postgres_ledger(writers, hot, args.seconds)
        theirs = postgres_eventsourcing(writers, hot, args.seconds)
        rows.append(("PostgreSQL", f"trueup ledger, {label}", ours, "tx/s"))
        rows.append(("PostgreSQL", f"eventsourcing, {label}", theirs, "tx/s"))
        ratios.append((label, ours / theirs))

    print(f"\nledger benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
          f"{os.cpu_count()} cores, {args.seconds:g} s per run\n")  # fmt: skip
    for database, what, rate, unit in rows:
        print(f"  {database:<11} {what:<52} {rate:>10,.0f} {unit}")
    for label, ratio in ratios:
        print(f"  ratio trueup / eventsourcing, {label}: {ratio:.2f}")
    print(f"  peak memory (largest process): {peak_mb():.0f} MB")
    print(f"  load average (1 min) before / after: {load_before:.1f} / {os.getloadavg()[0]:.1f}")
    out = Path("benchmarks/results")
    out.mkdir(parents=True, exist_ok=True)
    (out / "ledger.json").write_text(
        json.dumps({"rows": rows, "ratios": ratios, "peak_mb": peak_mb(), "seconds": args.seconds}, indent=1)
    )


if __name__ == "__main__":
    main()
