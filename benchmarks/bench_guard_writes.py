"""bench-guard (writes): what the guard's triggers cost a writing application, on PostgreSQL.

    make bench-guard                                     # 8 clients, 30 s per mode, twice
    .venv/bin/python benchmarks/bench_guard_writes.py --seconds 5 --clients 4 --repeat 1
    .venv/bin/python benchmarks/bench_guard_writes.py --shape storefront   # a `from` source with lookups

`--shape stock` (the default): a shop of `--items` items (`items.remaining` =
`items.total` - the sum of `sales.qty`) in database `bench_guard_writes`
(`--database`). Each client repeats a sale transaction: INSERT one sale of a
random item, UPDATE that item's cached figure by the same quantity, COMMIT.
`--shape storefront`: the storefront rule of `trueup.examples.storefront`, its
source a join guarded by the example's lookups; `--items` (storefront,
product) keys over 4 storefronts, one FULFILLED request each; a transaction
INSERTs a line item into a random storefront's request and UPDATEs that
storefront's figure for the product (the line item's trigger looks its
storefront up through the request). Deadlocks cannot occur (one key per
transaction). The same load runs, one after another in one run, with no
guard, then `capture`, `alarm` and `enforce` installed on the rule (each
removed before the next); `--repeat` runs it again, every other time in the
reverse order, so a load that changes during the run falls on different
modes. Reported per mode and run: committed transactions per second, the
cost against the same run's no guard, the load average as the mode started,
and the server's CPU time per committed transaction (the clients' backends'
own user + system time from /proc, when the server runs on this machine):
on a shared machine the throughput follows the neighbours' load, the CPU
per transaction much less. Goals (issue 13): capture ≤ 10 %, enforce ≤ 25 %.
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
import tomllib
from datetime import UTC, datetime
from typing import NamedTuple

import psycopg
import sqlalchemy as sa
from stock_rule import stock_rule  # benchmarks/, beside this script

from trueup import guard
from trueup.config import Config, parse_config
from trueup.examples import storefront

ADMIN_URL = os.environ.get("TRUEUP_BENCH_POSTGRESQL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
DATABASE = os.environ.get("TRUEUP_BENCH_GUARD_DATABASE", "bench_guard_writes")
MODES = ("none", "capture", "alarm", "enforce")
GOALS = {"capture": 0.10, "enforce": 0.25}
FORK = multiprocessing.get_context("fork")


STOCK = {
    "schema": [
        "CREATE TABLE items (id int PRIMARY KEY, total int NOT NULL, remaining int NOT NULL)",
        "CREATE TABLE sales (id bigserial PRIMARY KEY, item_id int NOT NULL, qty int NOT NULL)",
        "CREATE INDEX sales_item ON sales (item_id)",
        "INSERT INTO items SELECT g, 1000000, 1000000 FROM generate_series(1, :n) g",
    ],
    "config": stock_rule("sales"),
    "sale": [
        "INSERT INTO sales (item_id, qty) VALUES (%(key)s, %(qty)s)",
        "UPDATE items SET remaining = remaining - %(qty)s WHERE id = %(key)s",
    ],
}
STOREFRONTS = 4
STOREFRONT = {
    "schema": [
        "CREATE TABLE inventory_transferrequest (id int PRIMARY KEY, storefront_id int NOT NULL, status text NOT NULL)",
        "CREATE TABLE inventory_transferrequestlineitem (id bigserial PRIMARY KEY, request_id int NOT NULL, "
        "product_id int NOT NULL, requested_quantity int NOT NULL)",
        "CREATE INDEX line_request ON inventory_transferrequestlineitem (request_id)",
        "CREATE INDEX line_product ON inventory_transferrequestlineitem (product_id, request_id)",
        "CREATE TABLE inventory_storefrontinventory (id serial PRIMARY KEY, storefront_id int NOT NULL, "
        "product_id int NOT NULL, quantity int NOT NULL, UNIQUE (storefront_id, product_id))",
        f"INSERT INTO inventory_transferrequest SELECT s, s, 'FULFILLED' FROM generate_series(1, {STOREFRONTS}) s",
        "INSERT INTO inventory_storefrontinventory (storefront_id, product_id, quantity) "
        f"SELECT s, p, 0 FROM generate_series(1, {STOREFRONTS}) s, generate_series(1, :n / {STOREFRONTS}) p",
    ],
    "config": storefront.CONFIG.split("[[checks]]")[0],
    "sale": [
        "INSERT INTO inventory_transferrequestlineitem (request_id, product_id, requested_quantity) "
        f"VALUES ((%(key)s - 1) %% {STOREFRONTS} + 1, (%(key)s - 1) / {STOREFRONTS} + 1, %(qty)s)",
        "UPDATE inventory_storefrontinventory SET quantity = quantity + %(qty)s "
        f"WHERE storefront_id = (%(key)s - 1) %% {STOREFRONTS} + 1 AND product_id = (%(key)s - 1) / {STOREFRONTS} + 1",
    ],
}
SHAPES = {"stock": STOCK, "storefront": STOREFRONT}


def fresh_database(database: str, shape: dict, items: int) -> sa.engine.URL:
    admin = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        connection.execute(sa.text(f'CREATE DATABASE "{database}"'))
    admin.dispose()
    url = sa.make_url(ADMIN_URL).set(database=database)
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        for statement in shape["schema"]:
            connection.execute(sa.text(statement), {"n": items})
    engine.dispose()
    return url


def config(url: sa.engine.URL, shape: dict) -> Config:
    data = tomllib.loads(shape["config"])
    return parse_config({"database": {"url": url.render_as_string(hide_password=False)}, **data}, label="bench")


def client(
    url: str, sale: list[str], items: int, seconds: float, seed: int, start: float, out: multiprocessing.Queue
) -> None:
    chance = random.Random(seed)
    done = refused = 0
    with psycopg.connect(url, application_name=f"bench-{seed}") as connection:
        backend = connection.info.backend_pid
        while time.time() < start:
            time.sleep(0.001)
        cpu = backend_cpu(backend)
        end = start + seconds
        while time.time() < end:
            values = {"key": chance.randint(1, items), "qty": chance.randint(1, 5)}
            try:
                with connection.transaction():
                    for statement in sale:
                        connection.execute(statement, values)
                done += 1
            except psycopg.Error as error:
                if error.sqlstate != "TU001":
                    raise
                refused += 1
        cpu = backend_cpu(backend) - cpu
    out.put((done, refused, cpu))


def backend_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a server process so far; NaN when it is not on this machine."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Load(NamedTuple):
    rate: float  # committed sales per second
    refused: int  # sales enforce refused (a false positive: every sale is correct)
    cpu: float  # the server's CPU microseconds per committed sale


def load(url: sa.engine.URL, sale: list[str], clients: int, items: int, seconds: float) -> Load:
    """Committed sales per second over `seconds` from `clients` processes, how many were refused, and
    the server CPU each committed sale took."""
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    out: multiprocessing.Queue = FORK.Queue()
    start = time.time() + 1.0  # every client connected before the clock starts
    procs = [FORK.Process(target=client, args=(dsn, sale, items, seconds, n, start, out)) for n in range(clients)]
    for proc in procs:
        proc.start()
    results = [out.get() for _ in procs]
    for proc in procs:
        proc.join()
    done = sum(d for d, _, _ in results)
    return Load(done / seconds, sum(r for _, r, _ in results), 1e6 * sum(c for _, _, c in results) / max(done, 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30, help="how long each mode's load runs")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--items", type=int, default=10000, help="keys (storefront: over 4 storefronts)")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="stock")
    parser.add_argument("--repeat", type=int, default=2, help="runs of every mode, alternating their order")
    parser.add_argument("--database", default=DATABASE, help="the database to (re)create for the run")
    args = parser.parse_args()
    shape = SHAPES[args.shape]
    url = fresh_database(args.database, shape, args.items)
    cfg = config(url, shape)
    engine = sa.create_engine(url)
    print(f"bench-guard writes: {platform.node()}, {os.cpu_count()} cores, database {args.database}")
    print(
        f"  {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, shape {args.shape}, {args.clients} clients x {args.seconds:g} s, "
        f"{args.items} keys"
    )
    for run in range(args.repeat):
        modes = MODES if run % 2 == 0 else MODES[::-1]
        print(f"  run {run + 1}: " + ", ".join(modes))
        measured = {mode: measure(engine, cfg, url, mode, shape["sale"], args) for mode in modes}
        for mode in MODES:
            print(f"  {mode:8} {row(measured, mode)}")
    engine.dispose()


def measure(
    engine: sa.Engine, cfg: Config, url: sa.engine.URL, mode: str, sale: list[str], args: argparse.Namespace
) -> tuple:
    """Install `mode`'s guard (none: no guard), run the load, remove it; the load, the load average as it
    started and the violations alarm recorded (a false positive: every sale is correct)."""
    rule = cfg.rules[0].name
    if mode != "none":
        with engine.connect() as connection:
            guard.install(connection, cfg, rule, mode, yes=True, triggered_by="bench")
    started = os.getloadavg()[0]
    result = load(url, sale, args.clients, args.items, args.seconds)
    with engine.connect() as connection:
        found = guard.violations(connection, rule, 1)
        if mode != "none":
            guard.remove(connection, cfg, rule, yes=True, triggered_by="bench")
    return result, started, len(found)


def row(measured: dict[str, tuple], mode: str) -> str:
    (result, started, found), base = measured[mode], measured["none"][0]
    cost = "" if mode == "none" else f"  cost {1 - result.rate / base.rate:+6.1%}"
    cpu = f"  server CPU {result.cpu:5.0f} µs/tx" + ("" if mode == "none" else f" ({result.cpu - base.cpu:+4.0f})")
    goal = f" (goal <= {GOALS[mode]:.0%})" if mode in GOALS else ""
    false = f"  FALSE POSITIVES: {result.refused} refused, {found} recorded" if result.refused or found else ""
    return f"{result.rate:8.1f} tx/s{cost:14}{cpu}  load {started:4.1f}{goal}{false}"


if __name__ == "__main__":
    main()
