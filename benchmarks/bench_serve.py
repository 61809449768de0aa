"""`make bench-serve`: the HTTP service under 16 concurrent clients on loopback, beside its alternatives.

On PostgreSQL with `--items` items (default 100,000), `trueup serve` runs as its own process and:

1. the sync hook: 16 clients POST /api/sync for one random key (apply on) for `--seconds`, beside
   spawning `trueup sync --key` as a subprocess (one after another) in the same run;
2. ledger issues: 16 clients POST /api/ledger/issue (each with its own Idempotency-Key) for
   `--seconds`, beside 16 threads calling `Ledger.issue` in-process; conservation is checked
   after each (on hand = received − issued, no lost update).

Reports p50/p99/mean latency, requests/s, errors, answers by status (corrected/clean/queued/
skipped), CPU per request in the service and in the clients, the load average, and the service's
peak RSS. After the hooks it waits for the queue (`trueup_dirty`) to drain and checks that no key
a hook named is left drifted (the shop's drifted keys are those divisible by 50).
Usage:

    flock /tmp/trueup-bench.lock make bench-serve [BENCH_ARGS="--items 10000 --seconds 10"]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import psutil
import sqlalchemy as sa
from stock_rule import stock_rule  # benchmarks/, beside this script

from trueup.db import connect, open_engine
from trueup.ledger import Ledger
from trueup.serve import tokens

ADMIN_URL = os.environ.get("TRUEUP_BENCH_POSTGRESQL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
SCHEMA = "servebench_serve"
CLIENTS = 16
RULE = stock_rule("sales")


def schema_url(schema: str) -> str:
    engine = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    url = sa.engine.make_url(ADMIN_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


def drop_schema(schema: str) -> None:
    engine = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


def build_shop(url: str, items: int) -> None:
    """`items` items of 1,000; one sale per 10 items, and every 50th item's cached figure is off."""
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE items (id integer PRIMARY KEY, total integer, remaining integer)"))
        connection.execute(sa.text("CREATE TABLE sales (id serial PRIMARY KEY, item_id integer, qty integer)"))
        connection.execute(sa.text("CREATE INDEX ON sales (item_id)"))
        connection.execute(
            sa.text(
                "INSERT INTO items SELECT i, 1000, CASE WHEN i % 10 = 0 THEN 999 ELSE 1000 END "
                "+ CASE WHEN i % 50 = 0 THEN 7 ELSE 0 END FROM generate_series(1, :n) AS i"
            ),
            {"n": items},
        )
        connection.execute(
            sa.text("INSERT INTO sales (item_id, qty) SELECT i, 1 FROM generate_series(10, :n, 10) AS i"), {"n": items}
        )
        connection.execute(sa.text("ANALYZE"))
    engine.dispose()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Service:
    """`trueup serve` in its own process, sampling its resident memory."""

    def __init__(self, config: Path):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "trueup.cli", "serve", "-c", str(config), "--port", str(self.port)]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.peak = 0.0
        self.running = True
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(self.base + "/api/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise SystemExit("the service did not start")
            time.sleep(0.2)
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self) -> None:
        watched = psutil.Process(self.process.pid)
        while self.running:
            try:
                self.peak = max(self.peak, watched.memory_info().rss / 1e6)
            except psutil.Error:
                return
            time.sleep(0.1)

    def cpu_seconds(self) -> float:
        times = psutil.Process(self.process.pid).cpu_times()
        return times.user + times.system

    def measured(self, run) -> dict:  # type: ignore[no-untyped-def]
        """`run()`'s result, with the service's CPU per request and the load average before and after."""
        load, cpu = os.getloadavg()[0], self.cpu_seconds()
        result = run()
        result["service_cpu_ms_per_request"] = round((self.cpu_seconds() - cpu) * 1000 / max(result["requests"], 1), 2)
        result["load_average"] = [round(load, 1), round(os.getloadavg()[0], 1)]
        return result

    def stop(self) -> None:
        self.running = False
        self.process.terminate()
        self.process.wait(30)


def hammer(seconds: float, request, session=lambda: httpx.Client(timeout=30)) -> dict:  # type: ignore[no-untyped-def]
    """CLIENTS threads calling `request(session, client, n)` until `seconds` pass; latency and outcome of each."""
    latencies: list[float] = []
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client(number: int) -> None:
        with session() as http:
            n = 0
            while time.monotonic() < stop:
                started = time.perf_counter()
                try:
                    outcome = request(http, number, n)
                except Exception as error:  # an error is counted, never the end of the run
                    outcome = f"error {type(error).__name__}"
                elapsed = time.perf_counter() - started
                with lock:
                    latencies.append(elapsed)
                    outcomes[outcome] += 1
                n += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    began, cpu = time.perf_counter(), time.process_time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result = summary(latencies, outcomes, time.perf_counter() - began)
    result["this_process_cpu_ms_per_request"] = round((time.process_time() - cpu) * 1000 / max(len(latencies), 1), 2)
    return result


def summary(latencies: list[float], outcomes: Counter[str], wall: float) -> dict:
    ordered = sorted(latencies) or [0.0]
    return {
        "requests": len(latencies),
        "per_second": round(len(latencies) / wall, 1),
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 2),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 2),
        "errors": sum(n for k, n in outcomes.items() if k.startswith("error") or k.startswith("http")),
        "outcomes": dict(outcomes),
    }


def repaired(url: str, touched: set[int]) -> dict:
    """Once the queue has drained: how many of the keys the hooks named drifted at the start, and are left."""
    engine = sa.create_engine(url)
    deadline = time.monotonic() + 120
    with engine.connect() as connection:
        queued = sa.text("SELECT count(*) FROM trueup_dirty WHERE rule = 'stock'")
        while (left := connection.execute(queued).scalar_one()) and time.monotonic() < deadline:
            connection.rollback()
            time.sleep(0.2)
        drifted = sa.text(
            "SELECT i.id FROM items i LEFT JOIN (SELECT item_id, sum(qty) AS q FROM sales GROUP BY item_id) s "
            "ON s.item_id = i.id WHERE i.remaining <> i.total - coalesce(s.q, 0)"
        )
        still = set(connection.execute(drifted).scalars()) & touched
    engine.dispose()
    return {
        "keys_named": len(touched),
        "drifted_at_start": sum(1 for key in touched if key % 50 == 0),
        "still_queued": left,
        "drifted_left": len(still),
    }


def sync_subprocesses(config: Path, items: int, seconds: float) -> dict:
    latencies, outcomes = [], Counter()
    stop = time.monotonic() + seconds
    began = time.perf_counter()
    while time.monotonic() < stop or not latencies:
        key = str(random.randint(1, items))
        started = time.perf_counter()
        command = [
            sys.executable,
            "-m",
            "trueup.cli",
            "sync",
            "-c",
            str(config),
            "--rule",
            "stock",
            "--key",
            key,
            "--apply",
        ]
        done = subprocess.run(command, capture_output=True, check=False)
        latencies.append(time.perf_counter() - started)
        outcomes[f"exit {done.returncode}"] += 1
        if done.returncode == 2:
            raise SystemExit(f"trueup sync could not run: {done.stderr.decode().strip()}")
    return summary(latencies, outcomes, time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=30)
    args = parser.parse_args()
    url = schema_url(SCHEMA)
    folder = Path(tempfile.mkdtemp(prefix="trueup-bench-serve-"))
    config = folder / "trueup.toml"
    config.write_text(f'[database]\nurl = "{url}"\n[ledger]\nurl = "{url}"\n' + RULE)
    build_shop(url, args.items)
    engine = open_engine(url)
    with connect(engine) as connection:
        secret = tokens.create(connection, "bench", "sync")
    engine.dispose()
    auth = {"Authorization": f"Bearer {secret}"}
    results: dict = {"items": args.items, "seconds": args.seconds, "clients": CLIENTS}
    service = Service(config)
    try:
        touched: list[int] = []

        def hook(http: httpx.Client, client: int, n: int) -> str:
            key = random.randint(1, args.items)
            touched.append(key)
            answer = http.post(
                service.base + "/api/sync", json={"rule": "stock", "keys": [[key]], "apply": True}, headers=auth
            )
            return answer.json()["status"] if answer.status_code == 200 else f"http {answer.status_code}"

        results["sync_hook_http"] = service.measured(lambda: hammer(args.seconds, hook))
        results["sync_hook_http"]["afterwards"] = repaired(url, set(touched))
        results["sync_subprocess"] = sync_subprocesses(config, args.items, args.seconds)

        ledger = Ledger(url)
        stock = 10_000_000
        for client in range(CLIENTS):
            ledger.receive(f"sku-{client}", "shop", stock, unit_cost="0.50")
            ledger.receive(f"own-{client}", "shop", stock, unit_cost="0.50")

        def issue(http: httpx.Client, client: int, n: int) -> str:
            body = {"item": f"sku-{client % 4}", "location": "shop", "qty": "1"}
            headers = {**auth, "Idempotency-Key": f"http-{client}-{n}"}
            answer = http.post(service.base + "/api/ledger/issue", json=body, headers=headers)
            return "posted" if answer.status_code == 200 else f"http {answer.status_code}"

        results["ledger_http"] = service.measured(lambda: hammer(args.seconds, issue))
        issued_http = results["ledger_http"]["outcomes"].get("posted", 0)
        on_hand = sum(ledger.balance(f"sku-{c}", "shop") for c in range(4))
        results["ledger_http"]["conserved"] = on_hand == 4 * stock - issued_http
        results["ledger_in_process"] = in_process(ledger, args.seconds, stock)
        results["service_peak_rss_mb"] = round(service.peak, 1)
        ledger.close()
    finally:
        service.stop()
        drop_schema(SCHEMA)
    hook_p99 = results["sync_hook_http"]["p99_ms"]
    results["goals"] = {
        "sync_hook_p99_le_50ms": hook_p99 <= 50,
        "sync_hook_vs_subprocess": round(
            results["sync_subprocess"]["p50_ms"] / max(results["sync_hook_http"]["p50_ms"], 1e-9), 1
        ),
        "ledger_http_share_of_in_process": round(
            results["ledger_http"]["per_second"] / max(results["ledger_in_process"]["per_second"], 1e-9), 2
        ),
    }
    print(json.dumps(results, indent=2))


def in_process(ledger: Ledger, seconds: float, stock: int) -> dict:
    """The same issues through the Python API, 16 threads, on the items `own-N` (same hot-spot shape: 4 items)."""

    def issue(unused: object, client: int, n: int) -> str:
        ledger.issue(f"own-{client % 4}", "shop", "1", key=f"py-{client}-{n}")
        return "posted"

    result = hammer(seconds, issue, session=contextlib.nullcontext)
    on_hand = sum(ledger.balance(f"own-{c}", "shop") for c in range(4))
    result["conserved"] = on_hand == 4 * stock - result["outcomes"].get("posted", 0)
    return result


if __name__ == "__main__":
    main()
