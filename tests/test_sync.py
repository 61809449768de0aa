"""Sync: locks that never let rounds overlap, incremental rounds, recurring drift, watch under load."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

import trueup
from tests.databases import Database
from trueup.cli import app
from trueup.config import Config, parse_config
from trueup.db import dialect_for, open_engine
from trueup.reconcile import audit
from trueup.reconcile.audit import now
from trueup.reconcile.sync import SyncOptions, run_round

runner = CliRunner()
metadata = sa.MetaData()
items = sa.Table(
    "items",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("total", sa.Integer, nullable=False),
    sa.Column("remaining", sa.Integer, nullable=False),
)
sales = sa.Table(
    "sales",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("item_id", sa.Integer, nullable=False, index=True),
    sa.Column("qty", sa.Integer, nullable=False),
    sa.Column("sold_at", sa.DateTime, nullable=False, index=True),
)
RULE = """
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
time = "sold_at"
"""


def shop(db: Database, tmp_path: Path, count: int = 20) -> tuple[Config, Path]:
    """`count` items of 1,000, every figure correct, no sales yet."""
    db.create(metadata)
    db.insert(items, [{"id": i, "total": 1000, "remaining": 1000} for i in range(1, count + 1)])
    path = tmp_path / "trueup.toml"
    path.write_text(f'[database]\nurl = "{db.url}"\n' + RULE)
    return parse_config({"database": {"url": db.url}, **_rules()}), path


def _rules() -> dict:
    import tomllib

    return tomllib.loads(RULE)


def sell(db: Database, item: int, qty: int, *, deduct: bool = True, at: datetime | None = None) -> None:
    with db.engine.begin() as connection:
        connection.execute(sales.insert().values(item_id=item, qty=qty, sold_at=at or now()))
        if deduct:
            connection.execute(items.update().where(items.c.id == item).values(remaining=items.c.remaining - qty))


def remaining(db: Database) -> dict[int, int]:
    with db.engine.connect() as connection:
        return dict(connection.execute(sa.select(items.c.id, items.c.remaining)).all())


# -- locks -------------------------------------------------------------------------------------

HOLD = textwrap.dedent(
    """
    import sys, time
    from trueup.db import open_engine
    from trueup.reconcile.sync import rule_lock
    with rule_lock(open_engine(sys.argv[1]), "trueup:sync:stock", 0) as held:
        print("held" if held else "busy", flush=True)
        time.sleep(float(sys.argv[2]))
    """
)


def hold_lock(db: Database, seconds: float) -> subprocess.Popen:
    child = subprocess.Popen([sys.executable, "-c", HOLD, db.url, str(seconds)], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "held"
    return child


def test_rounds_of_one_rule_never_overlap_and_a_killed_holder_frees_the_lock(db: Database, tmp_path: Path) -> None:
    config, path = shop(db, tmp_path)
    holder = hold_lock(db, 60)
    try:
        engine = open_engine(db.url)
        skipped = run_round(engine, config, "stock", SyncOptions())
        assert (skipped.status, skipped.message) == ("skipped", "another round of this rule is running")
        result = runner.invoke(app, ["watch", "--once", "-c", str(path)])
        assert result.exit_code == 0 and "skipped, another round of this rule is running" in result.stdout
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    after = run_round(engine, config, "stock", SyncOptions(wait=10))  # the dead holder never blocks for long
    assert after.status == "clean"
    engine.dispose()


def test_a_waiting_round_runs_once_the_holder_finishes(db: Database, tmp_path: Path) -> None:
    config, _ = shop(db, tmp_path)
    holder = hold_lock(db, 1.5)
    engine = open_engine(db.url)
    started = time.monotonic()
    result = run_round(engine, config, "stock", SyncOptions(wait=20))
    assert result.status == "clean" and time.monotonic() - started >= 1
    holder.wait()
    engine.dispose()


def test_lock_is_exclusive_between_sessions(db: Database) -> None:
    engine = open_engine(db.url)
    dialect = dialect_for(engine)
    with engine.connect() as first, engine.connect() as second:
        assert dialect.try_lock(first, "trueup:test") is True
        if db.kind != "sqlite":  # on SQLite the lock belongs to the process, not the session
            assert dialect.try_lock(second, "trueup:test") is False
        dialect.unlock(first, "trueup:test")
        assert dialect.try_lock(second, "trueup:test") is True
        dialect.unlock(second, "trueup:test")
    engine.dispose()


# -- incremental -------------------------------------------------------------------------------


def test_incremental_rounds_see_late_records_within_the_overlap_and_full_rounds_see_the_rest(
    db: Database, tmp_path: Path
) -> None:
    config, _ = shop(db, tmp_path)
    engine = open_engine(db.url)
    options = SyncOptions(full_every=4, overlap=timedelta(minutes=5))
    sell(db, 9, 1)  # a correct sale, so the first round leaves a real watermark: now
    assert run_round(engine, config, "stock", options).kind == "full"  # no watermark yet

    sell(db, 1, 5, deduct=False)  # a sale that skipped the cached update
    sell(db, 2, 3, deduct=False, at=now() - timedelta(minutes=2))  # committed late, within the overlap
    sell(db, 3, 4, deduct=False, at=now() - timedelta(hours=2))  # committed very late: beyond the overlap
    second = run_round(engine, config, "stock", options)
    assert second.kind == "incremental"
    assert {d.key[0]: d.delta for d in second.drift} == {1: -5, 2: -3}
    assert second.checked == 3  # only the touched keys were compared (9 included: within the overlap)

    sell(db, 7, 2, deduct=False, at=now() + timedelta(days=30))  # a skewed clock: must not move the watermark
    third = run_round(engine, config, "stock", options)
    assert third.kind == "incremental"
    sell(db, 8, 6, deduct=False)
    still_seen = run_round(engine, config, "stock", options)
    assert {1, 2, 7, 8} <= {d.key[0] for d in still_seen.drift}  # 8 is not hidden behind the future date
    fourth = run_round(engine, config, "stock", options)
    assert fourth.kind == "full"  # full, then three incremental rounds: the full one sees what they cannot
    assert {d.key[0]: d.delta for d in fourth.drift} == {1: -5, 2: -3, 3: -4, 7: -2, 8: -6}
    engine.dispose()


def test_sync_of_named_keys_repairs_only_them(db: Database, tmp_path: Path) -> None:
    config, _ = shop(db, tmp_path)
    sell(db, 1, 5, deduct=False)
    sell(db, 2, 7, deduct=False)
    result = trueup.sync(config, rule="stock", keys=[(1,)], apply=True, triggered_by="sale_creation")
    assert (result.kind, result.status, result.corrected) == ("keys", "corrected", 1)
    assert remaining(db)[1] == 995 and remaining(db)[2] == 1000  # item 2 was not named: left alone
    with db.engine.connect() as connection:
        triggered = connection.execute(sa.text("SELECT triggered_by FROM trueup_runs")).scalars().all()
    assert triggered == ["sale_creation"]

    cli = runner.invoke(app, ["sync", "-c", str(tmp_path / "trueup.toml"), "-r", "stock", "-k", "2", "-f", "json"])
    assert cli.exit_code == 1  # drift found, not repaired
    assert json.loads(cli.stdout)["drift"] == [{"key": [2], "recorded": 1000, "expected": 993, "delta": -7}]


def test_recurring_drift_is_flagged_with_the_source_that_changed(db: Database, tmp_path: Path) -> None:
    config, path = shop(db, tmp_path)
    engine = open_engine(db.url)
    options = SyncOptions(apply=True, full_every=100)
    run_round(engine, config, "stock", options)
    sell(db, 4, 2, deduct=False)
    first = run_round(engine, config, "stock", options)
    assert (first.corrected, first.recurring) == (1, ())
    time.sleep(1.1)  # the next sale is stamped after the repair
    sell(db, 4, 1, deduct=False)
    sell(db, 5, 1)  # a correct sale: no drift, no alarm
    again = run_round(engine, config, "stock", options)
    [recurrence] = again.recurring
    assert (recurrence.key, recurrence.delta, recurrence.run_id) == ((4,), -1, first.run_id)
    assert recurrence.hints and recurrence.hints[0].startswith("sales: 1 record(s) since the repair")
    engine.dispose()

    shown = runner.invoke(app, ["history", "-c", str(path), "-r", "stock", "-k", "4", "-f", "json"])
    entries = json.loads(shown.stdout)["history"]
    assert [(e["delta"], e["recurring"]) for e in entries] == [(-1, True), (-2, False)]
    table = runner.invoke(app, ["history", "-c", str(path)], env={"COLUMNS": "200"})
    assert "RECURRING" in table.stdout

    page = tmp_path / "drift.html"
    runner.invoke(app, ["check", "-c", str(path), "-f", "html", "-o", str(page)])
    assert "Drift over time (full sync rounds)" in page.read_text()  # the rounds, charted


# -- watch under load --------------------------------------------------------------------------


@pytest.mark.slow
def test_watch_apply_corrects_every_injected_bug_within_one_round(db: Database, tmp_path: Path) -> None:
    config, path = shop(db, tmp_path, count=30)
    metrics = tmp_path / "trueup.prom"
    watch = subprocess.Popen(
        [sys.executable, "-m", "trueup.cli", "watch", "-c", str(path), "--every", "1s", "--apply",
         "--log-format", "json", "--metrics-file", str(metrics), "--full-every", "4"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    bugs: list[tuple[int, datetime]] = []
    stop = threading.Event()

    def seller(seed: int) -> None:
        rng = random.Random(seed)
        engine = sa.create_engine(db.url, connect_args={"timeout": 30} if db.kind == "sqlite" else {})
        while not stop.is_set():
            item, buggy = rng.randint(1, 30), rng.random() < 0.1
            try:
                with engine.begin() as connection:
                    connection.execute(sales.insert().values(item_id=item, qty=1, sold_at=now()))
                    if not buggy:
                        connection.execute(
                            items.update().where(items.c.id == item).values(remaining=items.c.remaining - 1)
                        )
                if buggy:
                    bugs.append((item, now()))
            except sa.exc.OperationalError:
                pass  # a deadlock victim or busy database: the sale did not happen
            time.sleep(0.01)
        engine.dispose()

    rounds: list[dict] = []
    reader = threading.Thread(target=lambda: rounds.extend(json.loads(line) for line in watch.stdout))
    reader.start()
    sellers = [threading.Thread(target=seller, args=(n,)) for n in range(4)]
    for thread in sellers:
        thread.start()
    time.sleep(7)
    stop.set()
    for thread in sellers:
        thread.join()
    last_bug = max(at for _, at in bugs)
    deadline = time.monotonic() + 120
    while not any(datetime.fromisoformat(r["ts"].removesuffix("Z")) > last_bug for r in rounds):
        assert time.monotonic() < deadline, "no round started after the last sale"
        time.sleep(0.2)
    watch.send_signal(signal.SIGTERM)
    assert watch.wait(timeout=60) == 0
    reader.join()
    assert bugs and len(rounds) >= 3

    starts = [datetime.fromisoformat(r["ts"].removesuffix("Z")) for r in rounds]
    for item, at in bugs:  # each bug is fixed by the round under way when it happened, or by the next one
        following = next(i for i, start in enumerate(starts) if start > at)
        candidates = [rounds[i] for i in (following - 1, following) if i >= 0]
        fixed = [
            r
            for r in candidates
            if [item] in [d["key"] for d in r["drift"]] and r["status"] in ("corrected", "residual")
        ]
        assert fixed, (
            item,
            at,
            [(r["ts"], r["kind"], r["status"], [d["key"] for d in r["drift"]]) for r in candidates],
        )
    assert trueup.check(config).rules[0].drifted == 0

    bugged = {item for item, _ in bugs}
    with db.engine.connect() as connection:
        touched = {json.loads(k)[0] for k in connection.execute(sa.select(audit.changes.c.key)).scalars()}
    assert touched <= bugged  # nothing but the injected drift was corrected
    recurring = {tuple(r["key"]) for line in rounds for r in line["recurring"]}
    assert recurring and all(key[0] in bugged for key in recurring)
    assert 'trueup_items_checked{rule="stock"}' in metrics.read_text()


ROUND = textwrap.dedent(
    """
    import sys
    from trueup.config import load_config
    from trueup.db import open_engine
    from trueup.reconcile.sync import SyncOptions, run_round
    config = load_config(sys.argv[1])
    engine = open_engine(config.database_url())
    print("go", flush=True)
    run_round(engine, config, "stock", SyncOptions(apply=True), full=True)
    """
)


@pytest.mark.slow
def test_a_killed_round_leaves_no_partial_state(db: Database, tmp_path: Path) -> None:
    config, path = shop(db, tmp_path, count=3000)

    def drift_and_start() -> tuple[subprocess.Popen, float]:
        with db.engine.begin() as connection:
            connection.execute(items.update().where(items.c.id % 3 == 0).values(remaining=items.c.remaining + 1))
        child = subprocess.Popen([sys.executable, "-c", ROUND, str(path)], stdout=subprocess.PIPE, text=True)
        assert child.stdout.readline().strip() == "go"
        return child, time.monotonic()

    child, started = drift_and_start()  # one undisturbed round: how long a round takes here
    child.wait(timeout=120)
    duration = time.monotonic() - started
    rng = random.Random(5)
    for _ in range(12):
        child, _ = drift_and_start()
        time.sleep(rng.uniform(0, duration * 1.2))
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    with db.engine.connect() as connection:
        runs = set(connection.execute(sa.text("SELECT id FROM trueup_runs")).scalars())
        recorded = set(
            connection.execute(sa.text("SELECT run_id FROM trueup_rounds WHERE run_id IS NOT NULL")).scalars()
        )
    assert runs == recorded  # every repair has its round, and no round claims a repair that rolled back
    final = run_round(open_engine(db.url), config, "stock", SyncOptions(apply=True, wait=10), full=True)
    assert final.status in ("corrected", "clean")  # the lock was not left behind
    assert trueup.check(config).rules[0].drifted == 0
