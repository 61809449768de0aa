"""bench-guard (writes): what the guard's triggers cost a writing application, on PostgreSQL.

    make bench-guard                                     # 8 clients, 30 s per mode
    .venv/bin/python benchmarks/bench_guard_writes.py --seconds 5 --clients 4
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
import tomllib
from datetime import UTC, datetime

import psycopg
import sqlalchemy as sa

from trueup import guard
from trueup.config import Config, parse_config
from trueup.examples import storefront

ADMIN_URL = os.environ.get("TRUEUP_BENCH_POSTGRESQL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
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
    "config": """
[[rules]]
name = "stock"
[rules.recorded]
table = "items"
key = ["id"]
quantity = "remaining"
[[rules.expected]]
table = "items"
key = ["id"]
quantity = "total"
[[rules.expected]]
table = "sales"
key = ["item_id"]
quantity = "qty"
sign = -1
""",
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
        while time.time() < start:
            time.sleep(0.001)
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
    out.put((done, refused))


def load(url: sa.engine.URL, sale: list[str], clients: int, items: int, seconds: float) -> tuple[float, int]:
    """Committed sales per second over `seconds` from `clients` processes, and how many were refused."""
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    out: multiprocessing.Queue = FORK.Queue()
    start = time.time() + 1.0  # every client connected before the clock starts
    procs = [FORK.Process(target=client, args=(dsn, sale, items, seconds, n, start, out)) for n in range(clients)]
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
    parser.add_argument("--items", type=int, default=10000, help="keys (storefront: over 4 storefronts)")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="stock")
    parser.add_argument("--database", default="bench_guard_writes", help="dropped and created afresh")
    args = parser.parse_args()
    shape = SHAPES[args.shape]
    url = fresh_database(args.database, shape, args.items)
    cfg = config(url, shape)
    rule = cfg.rules[0].name
    engine = sa.create_engine(url)
    rates: dict[str, float] = {}
    print(f"bench-guard writes: {platform.node()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}, ")
    print(
        f"  {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, shape {args.shape}, {args.clients} clients x {args.seconds:g} s, "
        f"{args.items} keys"
    )
    for mode in MODES:
        if mode != "none":
            with engine.connect() as connection:
                guard.install(connection, cfg, rule, mode, yes=True, triggered_by="bench")
        rate, refused = load(url, shape["sale"], args.clients, args.items, args.seconds)
        rates[mode] = rate
        with engine.connect() as connection:
            found = guard.violations(connection, rule, 1)
            if mode != "none":
                guard.remove(connection, cfg, rule, yes=True, triggered_by="bench")
        cost = "" if mode == "none" else f"  cost {1 - rate / rates['none']:+.1%}"
        goal = f" (goal <= {GOALS[mode]:.0%})" if mode in GOALS else ""
        false = f"  FALSE POSITIVES: {refused} refused, {len(found)} recorded" if refused or found else ""
        print(f"  {mode:8} {rate:8.1f} tx/s{cost}{goal}{false}")
    engine.dispose()


if __name__ == "__main__":
    main()
