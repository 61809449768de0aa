"""Benchmark of `trueup check` beside its floor and the per-item loop it replaces (issue 2).

One run, on PostgreSQL, of the usage_logs incident shape (`trueup.examples.usage_logs`):
items that open with `quantity_total`, minus their non-deleted `diaper_change` logs.

(a) trueup   the real CLI in a subprocess, `check --format json --output FILE`, so every
             drifted key is streamed and written; peak RSS is the process's own VmHWM.
(b) floor    one hand-written query (aggregate the logs, join the items, keep the drifted
             keys worst first) run through psql: what an expert gets with no tool at all.
(b')         the same by hand, also finding what trueup finds in the same pass (orphan,
             NULL-key and future-dated logs, negative figures): shows what those cost.
(c) loop     what one-off scripts do: for each item, one aggregate query over its logs
             (a Django `for item in items:` loop), timed on a random sample and extrapolated.

Each round runs (a), (b), (b') back to back; medians are reported, and the median of each
round's own ratio ("paired"), which the load of a shared machine disturbs less. The drifted
keys of (a), (b) and (b') must agree, figure for figure and in order, and (a)'s findings
must equal those (b') counts, or the run stops.

Goals (issue 2): a/b <= 1.25, c/a >= 100, peak RSS <= 150 MB whatever the item count; a
second, 100x smaller run shows the RSS does not grow with the items.

The data is generated inside PostgreSQL (generate_series, INSERT ... SELECT) in database
`trueup_bench`, one schema per scale, and reused while the scale matches:

    make bench-check                                              # 1,000,000 items, 20,000,000 logs
    make bench-check BENCH_ARGS="--items 100000 --rows 2000000"   # a tenth
"""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import sqlalchemy as sa
import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import URL, Connection, Engine, make_url

from trueup.examples import usage_logs

GENERATOR_VERSION = 1  # bump when the generated data changes, so old schemas are not reused
RESULTS = Path(__file__).parent / "results"
DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/trueup_bench"
MB = 1024 * 1024

console = Console(stderr=True)
app = typer.Typer(add_completion=False)


@dataclass(frozen=True)
class Scale:
    items: int
    rows: int
    drift: float  # share of items whose deduction never ran
    seed: float = 0.42

    @property
    def schema(self) -> str:
        return f"bench_v{GENERATOR_VERSION}_{self.items}_{self.rows}_{round(self.drift * 1000)}"


# -- data ---------------------------------------------------------------------------------------

# Every statement runs with search_path set to the scale's schema; :names are bound parameters.
GENERATE = [
    # Logs first, time-ordered like a real table, so each item's logs are spread over the heap.
    """
    INSERT INTO usage_logs (inventory_item_id, usage_type, quantity_used, is_deleted, logged_at)
    SELECT md5('item' || (1 + floor(random() * :items)::bigint))::uuid,
           CASE WHEN r < 0.6 THEN 'diaper_change' WHEN r < 0.85 THEN 'wipes' ELSE 'cream' END,
           1 + floor(random() * 3)::int,
           random() < 0.05,
           localtimestamp - interval '730 days' + g * (interval '730 days' / :rows)
    FROM (SELECT g, random() AS r FROM generate_series(1, :rows) AS g) AS t
    """,
    # Integrity problems: orphan logs (deleted items), future-dated logs, logs with no item.
    """
    INSERT INTO usage_logs (inventory_item_id, usage_type, quantity_used, is_deleted, logged_at)
    SELECT CASE k % 3 WHEN 0 THEN md5('gone' || k)::uuid WHEN 1 THEN md5('item' || k)::uuid END,
           'diaper_change', 2, false,
           CASE k % 3 WHEN 1 THEN localtimestamp + interval '30 days' ELSE localtimestamp END
    FROM generate_series(1, :planted) AS k
    """,
    # Heavy users: logs exceeding the pack, so the expected figure goes negative.
    """
    INSERT INTO usage_logs (inventory_item_id, usage_type, quantity_used, is_deleted, logged_at)
    SELECT md5('item' || n)::uuid, 'diaper_change', 500, false, localtimestamp - interval '1 day'
    FROM generate_series(1000, :items, 1000) AS n
    """,
    # Items whose cached figure is right, except a `drift` share never deducted (the bug).
    """
    INSERT INTO inventory_items (id, child_id, quantity_total, quantity_remaining, cost_per_unit)
    SELECT md5('item' || n)::uuid, 1 + (n - 1) / 4, total,
           CASE WHEN (n * 2654435761) % 1000000 < :drift * 1000000 THEN total ELSE total - coalesce(u.used, 0) END,
           (ARRAY[0.25, 0.31, 0.42])[1 + n % 3]
    FROM (SELECT n, (ARRAY[96, 120, 144, 186, 200])[1 + n % 5] AS total FROM generate_series(1, :items) AS n) AS i
    LEFT JOIN (
        SELECT inventory_item_id, sum(quantity_used) AS used FROM usage_logs
        WHERE usage_type = 'diaper_change' AND is_deleted = false GROUP BY inventory_item_id
    ) AS u ON u.inventory_item_id = md5('item' || n)::uuid
    """,
    "CREATE INDEX ix_usage_logs_item ON usage_logs (inventory_item_id)",
    "CREATE TABLE generated (at timestamptz NOT NULL DEFAULT now())",
    "INSERT INTO generated DEFAULT VALUES",
]

# (b) The floor: the query an expert would write by hand for the same drifted keys and figures.
FLOOR = """\
SELECT i.id,
       i.quantity_remaining AS recorded,
       i.quantity_total - coalesce(u.used, 0) AS expected,
       i.quantity_total - coalesce(u.used, 0) - i.quantity_remaining AS delta
FROM inventory_items AS i
LEFT JOIN (
    SELECT inventory_item_id, sum(quantity_used) AS used
    FROM usage_logs
    WHERE usage_type = 'diaper_change' AND is_deleted = false
    GROUP BY inventory_item_id
) AS u ON u.inventory_item_id = i.id
WHERE i.quantity_total - coalesce(u.used, 0) <> i.quantity_remaining
ORDER BY abs(i.quantity_total - coalesce(u.used, 0) - i.quantity_remaining) DESC, i.id
"""

# (b') The same by hand with the integrity findings trueup reports in the same pass: orphan and
# NULL-key logs, future-dated logs, NULL and negative figures (duplicate ids cannot occur: a key).
FLOOR_WITH_FINDINGS = """\
SELECT coalesce(i.id, u.inventory_item_id) AS id,
       i.id IS NULL AS missing,
       coalesce(i.quantity_remaining, 0) AS recorded,
       coalesce(i.quantity_total, 0) - coalesce(u.used, 0) AS expected,
       coalesce(i.quantity_total, 0) - coalesce(u.used, 0) - coalesce(i.quantity_remaining, 0) AS delta,
       coalesce(u.records, 0) AS records,
       coalesce(u.future, 0) AS future
FROM inventory_items AS i
FULL JOIN (
    SELECT inventory_item_id, sum(quantity_used) AS used, count(*) AS records,
           count(*) FILTER (WHERE logged_at > localtimestamp) AS future,
           count(*) - count(quantity_used) AS null_used
    FROM usage_logs
    WHERE usage_type = 'diaper_change' AND is_deleted = false
    GROUP BY inventory_item_id
) AS u ON u.inventory_item_id = i.id
WHERE i.id IS NULL OR u.future > 0 OR u.null_used > 0
   OR i.quantity_remaining IS NULL OR i.quantity_total IS NULL OR i.quantity_remaining < 0
   OR coalesce(i.quantity_total, 0) - coalesce(u.used, 0) < 0
   OR coalesce(i.quantity_total, 0) - coalesce(u.used, 0) <> coalesce(i.quantity_remaining, 0)
ORDER BY abs(coalesce(i.quantity_total, 0) - coalesce(u.used, 0) - coalesce(i.quantity_remaining, 0)) DESC, 1
"""

# The loop's one query per item, as an ORM would issue it.
_logs = usage_logs.usage_logs
PER_ITEM = sa.select(sa.func.coalesce(sa.func.sum(_logs.c.quantity_used), 0)).where(
    _logs.c.inventory_item_id == sa.bindparam("item"),
    _logs.c.usage_type == "diaper_change",
    _logs.c.is_deleted.is_(False),
)


def schema_url(base: URL, schema: str) -> URL:
    return base.update_query_dict({"options": f"-csearch_path={schema}"})


def ensure_database(base: URL) -> None:
    admin = sa.create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        exists = connection.scalar(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": base.database})
        if not exists:
            connection.execute(sa.text(f'CREATE DATABASE "{base.database}"'))
    admin.dispose()


def ensure_data(base: URL, scale: Scale) -> Engine:
    """An engine on the scale's schema, generating its data unless a complete copy is there."""
    ensure_database(base)
    engine = sa.create_engine(schema_url(base, scale.schema))
    with engine.connect() as connection:
        complete = connection.scalar(
            sa.text("SELECT 1 FROM pg_tables WHERE schemaname = :s AND tablename = 'generated'"), {"s": scale.schema}
        )
    if complete:
        console.print(f"reusing schema {scale.schema}")
        return engine
    started = time.perf_counter()
    with console.status(f"generating {scale.items:,} items and {scale.rows:,} logs in schema {scale.schema}"):
        with engine.begin() as connection:
            generate(connection, scale)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(sa.text("VACUUM (FREEZE, ANALYZE) inventory_items, usage_logs"))
    console.print(f"generated schema {scale.schema} in {time.perf_counter() - started:.0f} s")
    return engine


def generate(connection: Connection, scale: Scale) -> None:
    connection.execute(sa.text(f'DROP SCHEMA IF EXISTS "{scale.schema}" CASCADE'))
    connection.execute(sa.text(f'CREATE SCHEMA "{scale.schema}"'))
    connection.execute(sa.text("SET LOCAL maintenance_work_mem = '512MB'"))
    connection.execute(sa.text("SET LOCAL work_mem = '256MB'"))
    connection.execute(sa.text("SELECT setseed(:seed)"), {"seed": scale.seed})
    tables = [usage_logs.inventory_items, usage_logs.usage_logs]
    usage_logs.metadata.create_all(connection, tables=tables)
    connection.execute(sa.text("DROP INDEX ix_usage_logs_item"))  # rebuilt after the load: much faster
    params = {"items": scale.items, "rows": scale.rows, "drift": scale.drift, "planted": max(3, scale.items // 1000)}
    for statement in GENERATE:
        connection.execute(sa.text(statement), params)


def table_sizes(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        return {
            name: connection.scalar(sa.text("SELECT pg_total_relation_size(:t)"), {"t": name})
            for name in ("inventory_items", "usage_logs")
        }


# -- the three contenders ----------------------------------------------------------------------


@dataclass
class Timed:
    seconds: float
    peak_rss: int  # bytes


def run_measured(command: list[str], env: dict[str, str] | None = None) -> tuple[Timed, int, str]:
    """Run `command`, returning its wall time, its own peak RSS and exit code.

    The peak is the kernel's high-water mark (VmHWM) of the command's own memory, read by a
    thread while the command runs (wait4()'s ru_maxrss would also count this process, copied
    at fork); the main thread waits for the exit, so the time is exact.
    """
    peak, done = [0], threading.Event()
    with tempfile.TemporaryFile() as errors:
        started = time.perf_counter()
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=errors)

        def watch() -> None:
            while not done.wait(0.02):
                peak[0] = max(peak[0], high_water_mark(process.pid))

        watcher = threading.Thread(target=watch)
        watcher.start()
        process.wait()
        elapsed = time.perf_counter() - started
        done.set()
        watcher.join()
        errors.seek(0)
        stderr = errors.read().decode()
    return Timed(elapsed, peak[0]), process.returncode, stderr


def high_water_mark(pid: int) -> int:
    """Peak resident memory of `pid` so far in bytes (0 once it has exited)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def trueup_command(url: URL, config: Path, output: Path) -> list[str]:
    trueup = Path(sys.executable).with_name("trueup")
    database = url.render_as_string(hide_password=False)
    return [
        str(trueup),
        "check",
        "--config",
        str(config),
        "--database",
        database,
        "--format",
        "json",
        "-o",
        str(output),
    ]


def run_trueup(url: URL, config: Path, output: Path) -> Timed:
    timed, code, stderr = run_measured(trueup_command(url, config, output))
    if code not in (0, 1):
        raise SystemExit(f"trueup check failed (exit {code}): {stderr.strip()}")
    return timed


def run_psql(url: URL, sql: str, output: Path) -> Timed:
    command = ["psql", "-X", "-q", "-A", "-t", "-F", ",", "-v", "ON_ERROR_STOP=1", "-c", sql, "-o", str(output)]
    env = {
        **os.environ,
        "PGHOST": url.host or "127.0.0.1",
        "PGPORT": str(url.port or 5432),
        "PGUSER": url.username or "postgres",
        "PGDATABASE": url.database or "",
        "PGOPTIONS": url.query["options"],
    }
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    timed, code, stderr = run_measured(command, env)
    if code != 0:
        raise SystemExit(f"psql failed (exit {code}): {stderr.strip()}")
    return timed


def run_loop(engine: Engine, sample: int, seed: int) -> tuple[float, dict[str, tuple[int, int, int]]]:
    """Seconds per item of the per-item loop on a random sample, and the drift it found there."""
    items = usage_logs.inventory_items
    with engine.connect() as connection:
        ids = connection.execute(sa.select(items.c.id).order_by(items.c.id)).scalars().all()
        chosen = set(random.Random(seed).sample(ids, min(sample, len(ids))))
        del ids
        products = connection.execute(sa.select(items).where(items.c.id.in_(chosen))).all()
        drift: dict[str, tuple[int, int, int]] = {}
        started = time.perf_counter()
        for product in products:  # the loop under test
            used = connection.execute(PER_ITEM, {"item": product.id}).scalar_one()
            expected = product.quantity_total - used
            if expected != product.quantity_remaining:
                delta = expected - product.quantity_remaining
                drift[str(product.id)] = (product.quantity_remaining, expected, delta)
        elapsed = time.perf_counter() - started
    return elapsed / len(products), drift


# -- checking that (a), (b) and (c) agree ------------------------------------------------------


def trueup_drift(output: Path) -> tuple[list[tuple[str, int, int, int]], dict[str, Any]]:
    document = json.loads(output.read_text())
    rule = document["rules"][0]
    rows = [(str(d["key"][0]), int(d["recorded"]), int(d["expected"]), int(d["delta"])) for d in rule["drift"]]
    return rows, rule


def floor_drift(output: Path) -> list[tuple[str, int, int, int]]:
    rows = []
    for line in output.read_text().splitlines():
        key, recorded, expected, delta = line.split(",")
        rows.append((key, int(recorded), int(expected), int(delta)))
    return rows


def floor_findings(output: Path) -> tuple[list[tuple[str, int, int, int]], dict[str, int]]:
    """The drifted keys of (b'), and its findings counted as trueup counts them."""
    drift, found = (
        [],
        dict.fromkeys(("missing_row", "null_key", "future_dated", "negative_expected", "negative_recorded"), 0),
    )
    for line in output.read_text().splitlines():
        key, missing, *figures = line.split(",")
        recorded, expected, delta, records, future = map(int, figures)
        if not key:
            found["null_key"] += records
            continue
        found["missing_row"] += missing == "t"
        found["future_dated"] += future
        found["negative_expected"] += expected < 0
        found["negative_recorded"] += missing == "f" and recorded < 0
        if missing == "f" and delta:
            drift.append((key, recorded, expected, delta))
    return drift, found


def agree(trueup: list[tuple[str, int, int, int]], floor: list[tuple[str, int, int, int]], name: str) -> str:
    if trueup == floor:
        return f"{name}: same {len(trueup):,} drifted keys and figures, same order"
    if sorted(trueup) == sorted(floor):
        return f"{name}: same {len(trueup):,} drifted keys and figures (ties ordered differently)"
    only_a = set(trueup) - set(floor)
    only_b = set(floor) - set(trueup)
    raise SystemExit(
        f"MISMATCH with {name}: {len(only_a)} rows only in trueup (e.g. {sorted(only_a)[:3]}), "
        f"{len(only_b)} only in {name} (e.g. {sorted(only_b)[:3]})"
    )


def agree_on_findings(trueup: dict[str, int], floor: dict[str, int]) -> str:
    differ = {kind: (trueup.get(kind, 0), n) for kind, n in floor.items() if trueup.get(kind, 0) != n}
    if differ:
        raise SystemExit(f"MISMATCH in findings (trueup, b'): {differ}")
    return "b': same findings (" + ", ".join(f"{kind} {n:,}" for kind, n in floor.items()) + ")"


# -- the run -----------------------------------------------------------------------------------


@dataclass
class Measured:
    scale: Scale
    trueup: list[Timed]
    floor: list[Timed]
    floor_with_findings: list[Timed]
    loop_per_item: float | None
    drifted: int
    findings: dict[str, int]
    agreement: list[str]
    sizes: dict[str, int]

    @property
    def a(self) -> float:
        return statistics.median(t.seconds for t in self.trueup)

    @property
    def b(self) -> float:
        return statistics.median(t.seconds for t in self.floor)

    @property
    def b_findings(self) -> float:
        return statistics.median(t.seconds for t in self.floor_with_findings)

    def paired(self, floor: list[Timed]) -> float:
        """Median of each round's ratio: runs side by side share the machine's load of the moment."""
        return statistics.median(a.seconds / b.seconds for a, b in zip(self.trueup, floor, strict=True))

    @property
    def c(self) -> float | None:
        return None if self.loop_per_item is None else self.loop_per_item * self.scale.items

    @property
    def rss(self) -> int:
        return max(t.peak_rss for t in self.trueup)


def measure(base: URL, scale: Scale, *, repeat: int, sample: int, workdir: Path) -> Measured:
    engine = ensure_data(base, scale)
    url = schema_url(base, scale.schema)
    config = workdir / "trueup.toml"
    config.write_text(usage_logs.CONFIG, encoding="utf-8")
    a_out, b_out, bf_out = (workdir / f"{scale.schema}.{suffix}" for suffix in ("json", "b.csv", "bf.csv"))

    run_psql(url, FLOOR, b_out)  # warm-up: every contender then starts from the same cache state
    times: dict[str, list[Timed]] = {"a": [], "b": [], "b'": []}
    for index in range(repeat):
        with console.status(f"{scale.schema}: round {index + 1}/{repeat}"):
            times["a"].append(run_trueup(url, config, a_out))
            times["b"].append(run_psql(url, FLOOR, b_out))
            times["b'"].append(run_psql(url, FLOOR_WITH_FINDINGS, bf_out))
        console.print(
            f"  round {index + 1}: "
            + ", ".join(
                f"{name} {runs[-1].seconds:.2f} s ({runs[-1].peak_rss / MB:.0f} MB)" for name, runs in times.items()
            )
        )
    a_rows, rule = trueup_drift(a_out)
    findings = {f["kind"]: f["count"] for f in rule["findings"]}
    bf_rows, bf_findings = floor_findings(bf_out)
    agreement = [
        agree(a_rows, floor_drift(b_out), "b"),
        agree(a_rows, bf_rows, "b'"),
        agree_on_findings(findings, bf_findings),
    ]

    per_item = None
    if sample:
        with console.status(f"{scale.schema}: per-item loop on {sample:,} items"):
            per_item, loop_drift = run_loop(engine, sample, seed=7)
        expected = {key: (rec, exp, delta) for key, rec, exp, delta in a_rows if key in loop_drift}
        if expected != loop_drift:
            raise SystemExit("MISMATCH: the per-item loop and trueup disagree on the sampled items")
        agreement.append(f"c: agrees on its {sample:,} sampled items ({len(loop_drift):,} drifted)")
    sizes = table_sizes(engine)
    engine.dispose()
    return Measured(scale, times["a"], times["b"], times["b'"], per_item, rule["drifted"], findings, agreement, sizes)


def report(full: Measured, small: Measured) -> Table:
    table = Table(title="trueup check benchmark (median of runs; PostgreSQL)")
    table.add_column("")
    for m in (full, small):
        table.add_column(f"{m.scale.items:,} items / {m.scale.rows:,} logs", justify="right")

    def runs(timed: list[Timed]) -> str:
        return f"{statistics.median(t.seconds for t in timed):.2f} s  ({', '.join(f'{t.seconds:.1f}' for t in timed)})"

    rows: list[tuple[str, Any]] = [
        ("tables on disk", lambda m: f"{sum(m.sizes.values()) / MB:,.0f} MB"),
        ("drifted keys streamed", lambda m: f"{m.drifted:,}"),
        ("(a) trueup check --format json", lambda m: runs(m.trueup)),
        ("(b) floor: one SQL via psql", lambda m: runs(m.floor)),
        ("(b') floor with the same findings", lambda m: runs(m.floor_with_findings)),
        ("(c) per-item loop, extrapolated", lambda m: "—" if m.c is None else f"{m.c:,.0f} s"),
        ("    per item", lambda m: "—" if m.c is None else f"{m.loop_per_item * 1e6:,.0f} µs"),
        ("a/b (goal ≤ 1.25): medians / paired", lambda m: f"{m.a / m.b:.2f} / {m.paired(m.floor):.2f}"),
        ("a/b': medians / paired", lambda m: f"{m.a / m.b_findings:.2f} / {m.paired(m.floor_with_findings):.2f}"),
        ("c/a (goal ≥ 100)", lambda m: "—" if m.c is None else f"{m.c / m.a:,.0f}"),
        ("c/b (the floor's own ratio)", lambda m: "—" if m.c is None else f"{m.c / m.b:,.0f}"),
        ("trueup peak RSS (goal ≤ 150 MB)", lambda m: f"{m.rss / MB:.0f} MB"),
        ("psql peak RSS (b)", lambda m: f"{max(t.peak_rss for t in m.floor) / MB:.0f} MB"),
    ]
    for label, cell in rows:
        table.add_row(label, *(cell(m) for m in (full, small)))
    return table


def machine() -> str:
    with open("/proc/meminfo") as meminfo:
        ram = int(meminfo.readline().split()[1]) // 1024 // 1024
    return f"{os.cpu_count()} cores, {ram} GB RAM"


@app.command()
def main(
    items: Annotated[int, typer.Option(help="Items (recorded rows).")] = 1_000_000,
    rows: Annotated[int, typer.Option(help="Usage logs (source rows).")] = 20_000_000,
    drift: Annotated[float, typer.Option(help="Share of items whose deduction never ran.")] = 0.1,
    repeat: Annotated[int, typer.Option(help="Rounds of (a), (b) and (b'); medians are reported.")] = 3,
    sample: Annotated[int, typer.Option(help="Items the per-item loop runs on (0: skip it).")] = 2000,
    small: Annotated[int, typer.Option(help="The smaller run is this many times smaller.")] = 100,
    url: Annotated[str, typer.Option(envvar="TRUEUP_BENCH_URL", help="PostgreSQL database to use.")] = DEFAULT_URL,
) -> None:
    """Time `trueup check` (a) beside hand-written SQL without (b) and with (b') findings, and a per-item loop (c).

    Example: flock /tmp/trueup-bench.lock make bench-check BENCH_ARGS="--items 100000 --rows 2000000"
    """
    base = make_url(url)
    full_scale = Scale(items, rows, drift)
    small_scale = Scale(max(1, items // small), max(1, rows // small), drift)
    RESULTS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-check-") as tmp:
        workdir = Path(tmp)
        full = measure(base, full_scale, repeat=repeat, sample=sample, workdir=workdir)
        small_run = measure(base, small_scale, repeat=repeat, sample=0, workdir=workdir)
    with sa.create_engine(base).connect() as connection:
        server = connection.scalar(sa.text("SHOW server_version"))
    out = Console(width=130)
    out.print(report(full, small_run))
    for line in full.agreement + small_run.agreement:
        out.print(f"check: {line}")
    out.print(f"machine: {machine()}, PostgreSQL {server}, {datetime.now(UTC):%Y-%m-%d}")
    record = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "postgresql": server,
        "runs": [
            {
                "items": m.scale.items,
                "rows": m.scale.rows,
                "drifted": m.drifted,
                "trueup_s": [t.seconds for t in m.trueup],
                "trueup_rss_mb": [round(t.peak_rss / MB, 1) for t in m.trueup],
                "floor_s": [t.seconds for t in m.floor],
                "floor_with_findings_s": [t.seconds for t in m.floor_with_findings],
                "loop_s_per_item": m.loop_per_item,
                "a_over_b": m.a / m.b,
                "a_over_b_paired": m.paired(m.floor),
                "a_over_b_findings": m.a / m.b_findings,
                "c_over_a": None if m.c is None else m.c / m.a,
                "findings": m.findings,
            }
            for m in (full, small_run)
        ],
    }
    (RESULTS / f"check-{items}-{rows}.json").write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    app()
