"""bench-guard (writes): what the guard's triggers cost a writing application, on PostgreSQL.

    make bench-guard                                     # 8 clients, 30 s per mode
    .venv/bin/python benchmarks/bench_guard_writes.py --seconds 5 --clients 4

A shop of `--items` items (`items.remaining` = `items.total` - the sum of
`sales.qty`) in database `bench_guard_writes`. Each client repeats a sale
transaction: INSERT one sale of a random item, UPDATE that item's cached
figure by the same quantity, COMMIT; deadlocks cannot occur (one item per
transaction). The same load runs, one after another in one run, with no
guard, then `capture`, `alarm` and `enforce` installed on the rule (each
removed before the next). Reported: committed transactions per second and
the cost against no guard. Goals (issue 13): capture ≤ 10 %, enforce ≤ 25 %.
Every mode's sales are correct, so alarm records nothing and enforce fails
nothing (both are checked: a violation would be a false positive).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import random
import time
from datetime import UTC, datetime

import psycopg
import sqlalchemy as sa

from trueup import guard
from trueup.config import parse_config

ADMIN_URL = os.environ.get("TRUEUP_BENCH_POSTGRESQL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
DATABASE = "bench_guard_writes"
MODES = ("none", "capture", "alarm", "enforce")
GOALS = {"capture": 0.10, "enforce": 0.25}
FORK = multiprocessing.get_context("fork")


def fresh_database(items: int) -> sa.engine.URL:
    admin = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)'))
        connection.execute(sa.text(f'CREATE DATABASE "{DATABASE}"'))
    admin.dispose()
    url = sa.make_url(ADMIN_URL).set(database=DATABASE)
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(
            sa.text("CREATE TABLE items (id int PRIMARY KEY, total int NOT NULL, remaining int NOT NULL)")
        )
        connection.execute(
            sa.text("CREATE TABLE sales (id bigserial PRIMARY KEY, item_id int NOT NULL, qty int NOT NULL)")
        )
        connection.execute(sa.text("CREATE INDEX sales_item ON sales (item_id)"))
        connection.execute(
            sa.text("INSERT INTO items SELECT g, 1000000, 1000000 FROM generate_series(1, :n) g"), {"n": items}
        )
    engine.dispose()
    return url


def config(url: sa.engine.URL) -> dict[str, object]:
    return {
        "database": {"url": url.render_as_string(hide_password=False)},
        "rules": [
            {
                "name": "stock",
                "recorded": {"table": "items", "key": ["id"], "quantity": "remaining"},
                "expected": [
                    {"table": "items", "key": ["id"], "quantity": "total"},
                    {"table": "sales", "key": ["item_id"], "quantity": "qty", "sign": -1},
                ],
            }
        ],
    }


def client(url: str, items: int, seconds: float, seed: int, start: float, out: multiprocessing.Queue) -> None:
    chance = random.Random(seed)
    done = refused = 0
    with psycopg.connect(url, application_name=f"bench-{seed}") as connection:
        while time.time() < start:
            time.sleep(0.001)
        end = start + seconds
        while time.time() < end:
            item, qty = chance.randint(1, items), chance.randint(1, 5)
            try:
                with connection.transaction():
                    connection.execute("INSERT INTO sales (item_id, qty) VALUES (%s, %s)", (item, qty))
                    connection.execute("UPDATE items SET remaining = remaining - %s WHERE id = %s", (qty, item))
                done += 1
            except psycopg.Error as error:
                if error.sqlstate != "TU001":
                    raise
                refused += 1
    out.put((done, refused))


def load(url: sa.engine.URL, clients: int, items: int, seconds: float) -> tuple[float, int]:
    """Committed sales per second over `seconds` from `clients` processes, and how many were refused."""
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    out: multiprocessing.Queue = FORK.Queue()
    start = time.time() + 1.0  # every client connected before the clock starts
    procs = [FORK.Process(target=client, args=(dsn, items, seconds, n, start, out)) for n in range(clients)]
    for proc in procs:
        proc.start()
    results = [out.get() for _ in procs]
    for proc in procs:
        proc.join()
    return sum(d for d, _ in results) / seconds, sum(r for _, r in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30, help="how long each mode's load runs")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--items", type=int, default=10000)
    args = parser.parse_args()
    url = fresh_database(args.items)
    cfg = parse_config(config(url), label="bench")
    engine = sa.create_engine(url)
    rates: dict[str, float] = {}
    print(f"bench-guard writes: {platform.node()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}, ")
    print(f"  {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {args.clients} clients x {args.seconds:g} s, {args.items} items")
    for mode in MODES:
        if mode != "none":
            with engine.connect() as connection:
                guard.install(connection, cfg, "stock", mode, yes=True, triggered_by="bench")
        rate, refused = load(url, args.clients, args.items, args.seconds)
        rates[mode] = rate
        with engine.connect() as connection:
            found = guard.violations(connection, "stock", 1)
            if mode != "none":
                guard.remove(connection, cfg, "stock", yes=True, triggered_by="bench")
        cost = "" if mode == "none" else f"  cost {1 - rate / rates['none']:+.1%}"
        goal = f" (goal <= {GOALS[mode]:.0%})" if mode in GOALS else ""
        false = f"  FALSE POSITIVES: {refused} refused, {len(found)} recorded" if refused or found else ""
        print(f"  {mode:8} {rate:8.1f} tx/s{cost}{goal}{false}")
    engine.dispose()


if __name__ == "__main__":
    main()
