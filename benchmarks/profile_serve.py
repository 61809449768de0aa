"""What one request costs inside the service: SQL statements and time per sync hook and per ledger issue.

The application runs in this process (`starlette.testclient.TestClient`, one client, one request
at a time), on the shop `bench_serve.py` builds, so the figures are the service's own work with no
concurrency: every statement the target engine and the ledger engine execute is counted by a
SQLAlchemy `before_cursor_execute` event and grouped by its verb and table. For where the time goes
under load, sample the running service of `bench_serve.py` with py-spy instead.

    PYTHONPATH=src python benchmarks/profile_serve.py --items 100000 --requests 200
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench_serve import RULE, build_shop, drop_schema, schema_url
from sqlalchemy import event
from starlette.testclient import TestClient

from trueup.config import load_config
from trueup.db import connect
from trueup.serve import tokens
from trueup.serve.app import create_app
from trueup.serve.service import Service

SCHEMA = "servebench_profile"


class Statements:
    """Counts the statements engines execute, by their first words (`SELECT ... FROM trueup_tokens`)."""

    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()

    def watch(self, engine: object) -> None:
        event.listen(engine, "before_cursor_execute", self._count)

    def _count(self, connection, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        self.seen[_shape(statement)] += 1

    def take(self) -> Counter[str]:
        seen, self.seen = self.seen, Counter()
        return seen


def _shape(statement: str) -> str:
    words = " ".join(statement.split())
    verb = words.split(" ", 1)[0].upper()
    table = re.search(r"\b(?:FROM|INTO|UPDATE|TABLE)\s+([\w.\"]+)", words, re.IGNORECASE)
    return f"{verb} {table.group(1)}" if table else re.sub(r"%\(\w+\)s", "?", words)[:60]


def measure(http: TestClient, statements: Statements, requests: int, call) -> dict:  # type: ignore[no-untyped-def]
    call(http, -1)  # the first request pays for what is made once (tables, the ledger); not counted
    statements.take()
    latencies = []
    cpu = time.process_time()
    for n in range(requests):
        started = time.perf_counter()
        call(http, n)
        latencies.append(time.perf_counter() - started)
    seen = statements.take()
    return {
        "per_request": round(sum(seen.values()) / requests, 2),
        "cpu_ms": round((time.process_time() - cpu) * 1000 / requests, 2),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "by_shape": {shape: round(n / requests, 2) for shape, n in seen.most_common()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    url = schema_url(SCHEMA)
    config_file = Path(tempfile.mkdtemp(prefix="trueup-profile-serve-")) / "trueup.toml"
    config_file.write_text(f'[database]\nurl = "{url}"\n[ledger]\nurl = "{url}"\n' + RULE)
    build_shop(url, args.items)
    service = Service(load_config(config_file))
    with connect(service.engine) as connection:
        auth = {"Authorization": f"Bearer {tokens.create(connection, 'profile', 'sync')}"}
    statements = Statements()
    statements.watch(service.engine)
    statements.watch(service.ledger().engine)
    service.ledger().receive("sku", "shop", 10_000_000, unit_cost="0.50")

    def hook(http: TestClient, n: int) -> None:
        body = {"rule": "stock", "keys": [[random.randint(1, args.items)]], "apply": True}
        http.post("/api/sync", json=body, headers=auth).raise_for_status()

    def issue(http: TestClient, n: int) -> None:
        body = {"item": "sku", "location": "shop", "qty": "1"}
        http.post("/api/ledger/issue", json=body, headers={**auth, "Idempotency-Key": f"p-{n}"}).raise_for_status()

    try:
        with TestClient(create_app(service)) as http:
            calls = {"hook": hook, "issue": issue}
            results = {name: measure(http, statements, args.requests, call) for name, call in calls.items()}
    finally:
        drop_schema(SCHEMA)
    for name, result in results.items():
        print(
            f"{name}: {result['per_request']} statements per request, p50 {result['p50_ms']} ms, "
            f"{result['cpu_ms']} ms CPU (service and one client, in this process)"
        )
        for shape, n in result["by_shape"].items():
            print(f"    {n:6.2f}  {shape}")


if __name__ == "__main__":
    main()
