"""Sync: locks that never let rounds overlap, incremental rounds, recurring drift, watch under load."""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

import trueup
from tests.databases import Database, make_database
from trueup.cli import app
from trueup.config import Config, load_config
from trueup.db import dialect_for, open_engine
from trueup.reconcile import audit, history, queue
from trueup.reconcile import sync as sync_module
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


def shop(db: Database, tmp_path: Path, count: int = 20, *, settings: str = "") -> tuple[Config, Path]:
    """`count` items of 1,000, every figure correct, no sales yet; `settings` is TOML put before the rule."""
    db.create(metadata)
    db.insert(items, [{"id": i, "total": 1000, "remaining": 1000} for i in range(1, count + 1)])
    path = tmp_path / "trueup.toml"
    path.write_text(f'[database]\nurl = "{db.url}"\n{settings}\n' + RULE)
    return load_config(path), path


def bump(db: Database, *ids: int, by: int = 1) -> None:
    """Drift that leaves no trace in a timed source: the cached figure edited in place."""
    with db.engine.begin() as connection:
        connection.execute(items.update().where(items.c.id.in_(ids)).values(remaining=items.c.remaining + by))


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
    import sys
    from trueup.db import open_engine
    from trueup.reconcile.sync import rule_lock
    with rule_lock(open_engine(sys.argv[1]), "stock", 0) as held:
        print("held" if held else "busy", flush=True)
        sys.stdin.read()  # until the test closes it (or kills this process)
    """
)


def hold_lock(db: Database) -> subprocess.Popen:
    """Another process holding the rule's lock until its stdin is closed (or it is killed)."""
    child = subprocess.Popen(
        [sys.executable, "-c", HOLD, db.url], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert child.stdout.readline().strip() == "held"
    return child


def kill(child: subprocess.Popen) -> None:
    os.kill(child.pid, signal.SIGKILL)
    child.wait()


@contextmanager
def logged(logger: str, text: str) -> Iterator[threading.Event]:
    """An event set when `logger` logs a message containing `text`."""
    seen = threading.Event()

    class Watch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if text in record.getMessage():
                seen.set()

    handler, target = Watch(), logging.getLogger(logger)
    previous = target.level
    target.addHandler(handler)
    target.setLevel(logging.INFO)
    try:
        yield seen
    finally:
        target.removeHandler(handler)
        target.setLevel(previous)


def test_rounds_of_one_rule_never_overlap_and_a_killed_holder_frees_the_lock(db: Database, tmp_path: Path) -> None:
    config, path = shop(db, tmp_path)
    holder = hold_lock(db)
    try:
        engine = open_engine(db.url)
        skipped = run_round(engine, config, "stock", SyncOptions())
        assert (skipped.status, skipped.message) == ("skipped", "another round of this rule is running")
        result = runner.invoke(app, ["watch", "--once", "-c", str(path)])
        assert result.exit_code == 0 and "skipped, another round of this rule is running" in result.stdout
    finally:
        kill(holder)
    after = run_round(engine, config, "stock", SyncOptions(wait=10))  # the dead holder never blocks for long
    assert after.status == "clean"
    engine.dispose()


def test_a_waiting_round_runs_once_the_holder_finishes(db: Database, tmp_path: Path) -> None:
    config, _ = shop(db, tmp_path)
    holder = hold_lock(db)
    engine = open_engine(db.url)
    results: list = []
    with logged("trueup.reconcile.sync", "waiting up to 60 s") as waiting:
        waiter = lambda: results.append(run_round(engine, config, "stock", SyncOptions(wait=60)))  # noqa: E731
        thread = threading.Thread(target=waiter)
        thread.start()
        assert waiting.wait(timeout=120), "the round never found the lock taken"
    released = now()
    holder.stdin.close()  # the holder lets go only now: the round ran after this, not beside it
    holder.wait(timeout=60)
    thread.join(timeout=120)
    [result] = results
    assert result.status == "clean" and result.started_at >= released
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


def test_rounds_of_a_rule_in_another_database_of_the_server_do_not_wait(server_db: Database, tmp_path: Path) -> None:
    other, drop = make_database(server_db.kind, tmp_path)
    try:
        holder = hold_lock(server_db)  # a round of "stock" running in the first database
        (tmp_path / "other").mkdir()
        config, _ = shop(other, tmp_path / "other")
        engine = open_engine(other.url)
        assert run_round(engine, config, "stock", SyncOptions()).status == "clean"  # not skipped
        engine.dispose()
        kill(holder)
    finally:
        drop()


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
         "--format", "json", "--metrics-file", str(metrics), "--full-every", "4", "--max-changes", "1000"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
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
    arrived = threading.Condition()

    def read() -> None:
        for line in watch.stdout:
            with arrived:
                rounds.append(json.loads(line))
                arrived.notify_all()

    def wait_until(condition, what: str) -> None:
        with arrived:  # a deadline only in case the watch died: the test waits for rounds, not for time
            assert arrived.wait_for(condition, timeout=300), what

    reader = threading.Thread(target=read)
    reader.start()
    sellers = [threading.Thread(target=seller, args=(n,)) for n in range(4)]
    for thread in sellers:
        thread.start()
    wait_until(lambda: len(rounds) >= 1, "watch never finished its first round")
    selling_since = len(rounds)
    # Sell until three rounds have completed during the sales (each saw bugs), whatever the machine's speed.
    wait_until(lambda: len(rounds) >= selling_since + 3 and bugs, "no three rounds during the sales")
    stop.set()
    for thread in sellers:
        thread.join()
    last_bug = max(at for _, at in bugs)
    # A round's line is printed when it ends, stamped with its start: wait for one that began after the last sale.
    wait_until(
        lambda: any(datetime.fromisoformat(r["ts"].removesuffix("Z")) > last_bug for r in rounds),
        "no round started after the last sale",
    )
    watch.send_signal(signal.SIGTERM)
    assert watch.wait(timeout=60) == 0
    reader.join()

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
    run_round(engine, config, "stock", SyncOptions(apply=True, max_changes=10_000), full=True)
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
    for _ in range(8):
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
    options = SyncOptions(apply=True, wait=10, max_changes=10_000)
    final = run_round(open_engine(db.url), config, "stock", options, full=True)
    assert final.status in ("corrected", "clean")  # the lock was not left behind
    assert trueup.check(config).rules[0].drifted == 0


# -- open drift: found and not repaired, it stays found ----------------------------------------


def gauge(metrics: Path, name: str) -> float:
    [line] = [line for line in metrics.read_text().splitlines() if line.startswith(f'{name}{{rule="stock"}}')]
    return float(line.split()[-1])


def test_drift_a_round_only_checked_is_taken_by_the_next_applying_round(db: Database, tmp_path: Path) -> None:
    config, path = shop(db, tmp_path)
    metrics = tmp_path / "trueup.prom"
    watch = ["watch", "--once", "-c", str(path), "--metrics-file", str(metrics)]
    sell(db, 9, 1)  # a correct sale: the first round leaves a watermark, so the next rounds are incremental
    bump(db, 2, 3, 4)  # drift no timed source shows: only a full round sees it
    first = runner.invoke(app, watch)
    assert first.exit_code == 1 and "full: 20 checked, 3 drifted" in first.stdout
    again = runner.invoke(app, watch)  # incremental, nothing touched since: the open drift is still drift
    assert again.exit_code == 1 and "incremental: 4 checked, 3 drifted" in again.stdout
    assert gauge(metrics, "trueup_items_drifted") == 3

    sell(db, 7, 2, deduct=False)  # a new bug, the only key an incremental round would otherwise look at
    applied = runner.invoke(app, [*watch, "--apply", "--max-changes", "10"])
    assert applied.exit_code == 0, applied.stdout
    assert "incremental: 5 checked, 4 drifted, 4 corrected" in applied.stdout
    assert trueup.check(config).rules[0].drifted == 0
    clean = runner.invoke(app, watch)
    assert clean.exit_code == 0 and "incremental: 2 checked, 0 drifted" in clean.stdout
    assert gauge(metrics, "trueup_items_drifted") == 0


def test_a_hook_repairing_an_open_key_closes_it(db: Database, tmp_path: Path) -> None:
    config, _ = shop(db, tmp_path)
    engine = open_engine(db.url)
    sell(db, 9, 1)
    bump(db, 2, 3)
    assert run_round(engine, config, "stock", SyncOptions()).drifted == 2  # full, check only: 2 and 3 open
    assert trueup.sync(config, rule="stock", keys=[(2,)], apply=True).status == "corrected"
    later = run_round(engine, config, "stock", SyncOptions())
    assert (later.kind, later.checked, [d.key[0] for d in later.drift]) == ("incremental", 2, [3])
    engine.dispose()


# -- limits for rounds that repair on their own ------------------------------------------------


def test_a_round_over_its_limit_repairs_nothing_and_says_how_to_raise_it(db: Database, tmp_path: Path) -> None:
    config, path = shop(db, tmp_path, count=40)
    bump(db, 1, 2, 3)
    refused = runner.invoke(app, ["watch", "--once", "--apply", "-c", str(path)], env={"COLUMNS": "300"})
    assert refused.exit_code == 1
    assert (
        "full: 40 checked, 3 drifted, refused (3 correction(s), more than a round may make on its own "
        "(2: the smaller of max_changes = 1000 and max_percent = 5 % of 40 item(s)); nothing was written. "
        f"Raise max_changes or max_percent under [sync] (or [rules.sync] of rule 'stock') in {path}, "
        "or pass --max-changes N)"
    ) in refused.stdout
    assert remaining(db)[1] == 1001  # nothing was written
    assert not sa.inspect(db.engine).has_table("trueup_runs")  # not even a run begun
    [(status, message)] = db.rows("SELECT status, message FROM trueup_rounds")
    assert status == "refused" and message.startswith("3 correction(s), more than a round may make on its own")

    explicit = runner.invoke(app, ["watch", "--once", "--apply", "-c", str(path), "--max-changes", "3"])
    assert explicit.exit_code == 0 and "3 corrected" in explicit.stdout

    bump(db, 1, 2, 3)  # a hook names its keys: only max_changes bounds it, not a share of the rule's items
    hook = trueup.sync(config, rule="stock", keys=[(1,), (2,), (3,)], apply=True)
    assert (hook.status, hook.corrected) == ("corrected", 3)
    bump(db, 1, 2, 3)
    capped = trueup.sync(config, rule="stock", keys=[(1,), (2,), (3,)], apply=True, max_changes=2)
    assert (capped.status, remaining(db)[1]) == ("refused", 1001)


@pytest.mark.parametrize(
    ("settings", "rule_settings", "corrected"),
    [
        ("[sync]\nmax_percent = 10", "", 3),  # 10 % of 40 = 4 rows
        ("[sync]\nmax_percent = 10", "[rules.sync]\nmax_changes = 2", 0),  # the rule's own limit wins
        ("[sync]\nmax_changes = 2\nmax_percent = 100", "", 0),
    ],
)
def test_the_config_raises_or_lowers_the_limit(
    sqlite_db: Database, tmp_path: Path, settings: str, rule_settings: str, corrected: int
) -> None:
    _, path = shop(sqlite_db, tmp_path, count=40, settings=settings)
    path.write_text(path.read_text() + rule_settings + "\n")
    bump(sqlite_db, 1, 2, 3)
    result = runner.invoke(app, ["watch", "--once", "--apply", "-c", str(path), "-f", "json"])
    assert json.loads(result.stdout)["corrected"] == corrected
    assert result.exit_code == (0 if corrected else 1)


def test_a_limit_out_of_range_is_a_config_error(sqlite_db: Database, tmp_path: Path) -> None:
    _, path = shop(sqlite_db, tmp_path)
    path.write_text(path.read_text() + "[rules.sync]\nmax_percent = 150\n")
    result = runner.invoke(app, ["watch", "--once", "-c", str(path)])
    assert result.exit_code == 2
    assert f"{path}: rule 'stock': sync.max_percent: Input should be less than or equal to 100" in result.stderr


# -- hooks that meet a running round queue their keys ------------------------------------------


def queued_rows(db: Database) -> list[tuple]:
    d = queue.dirty.c
    with db.engine.connect() as connection:
        return [tuple(row) for row in connection.execute(sa.select(d.rule, d.key, d.queued_by).order_by(d.id))]


def test_hooks_meeting_a_running_full_round_queue_their_keys_and_the_holder_repairs_each_once(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, _ = shop(db, tmp_path, count=40, settings="[sync]\nmax_percent = 100")
    engine = open_engine(db.url)
    for item in range(1, 9):
        sell(db, item, item, deduct=False)  # drift the full round will see
    paused, resume = threading.Event(), threading.Event()
    repair = sync_module._repair

    def paused_repair(*args, **kwargs):  # the first repair (the full round's) waits here, holding the lock
        if not paused.is_set():
            paused.set()
            assert resume.wait(timeout=300)
        return repair(*args, **kwargs)

    monkeypatch.setattr(sync_module, "_repair", paused_repair)
    full: list = []
    holder = threading.Thread(
        target=lambda: full.extend(sync_module.run_rounds(engine, config, "stock", SyncOptions(apply=True), full=True))
    )
    holder.start()
    try:
        hooks = _hooks_while_paused(db, config, paused)
    finally:
        resume.set()  # never leave the round (and its lock) hanging, whatever failed
    holder.join()
    assert sorted(r.status for r in hooks) == ["queued"] * 16
    assert all(r.message == "another round of this rule is running: 1 key(s) queued" for r in hooks)
    assert [(r.kind, r.status, r.corrected) for r in full] == [("full", "corrected", 8), ("keys", "corrected", 8)]
    assert full[1].checked == 16  # the holder took every queued key before letting go
    assert remaining(db) == {i: 1000 - (i if i < 9 else 100 + i if i < 17 else 0) for i in range(1, 41)}
    with db.engine.connect() as connection:
        repaired = [json.loads(k)[0] for k in connection.execute(sa.select(audit.changes.c.key)).scalars()]
    assert sorted(repaired) == list(range(1, 17))  # every key repaired, none twice
    assert queued_rows(db) == []
    engine.dispose()


def _hooks_while_paused(db: Database, config: Config, paused: threading.Event) -> list:
    """16 hook calls at once, while the full round is paused holding the lock; what they returned."""
    assert paused.wait(timeout=300)
    for item in range(9, 17):
        sell(db, item, 100 + item, deduct=False)  # drift that happens while the round runs

    hooks: list = []
    start = threading.Barrier(16)

    def hook(item: int) -> None:
        start.wait()
        hooks.append(trueup.sync(config, rule="stock", keys=[(item,)], apply=True, triggered_by=f"sale-{item}"))

    callers = [threading.Thread(target=hook, args=(item,)) for item in range(1, 17)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join()
    assert sorted(queued_rows(db)) == sorted(("stock", f"[{i}]", f"sale-{i}") for i in range(1, 17))
    return hooks


def test_a_round_that_fails_leaves_the_queue_as_it_was(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, path = shop(db, tmp_path)
    sell(db, 5, 3, deduct=False)
    holder = hold_lock(db)
    try:
        cli = runner.invoke(app, ["sync", "-c", str(path), "-r", "stock", "-k", "5", "--apply", "--wait", "0"])
        assert cli.exit_code == 0, cli.output
        assert "stock keys: queued, another round of this rule is running: 1 key(s) queued" in cli.stdout
        as_json = runner.invoke(app, ["sync", "-c", str(path), "-r", "stock", "-k", "5", "--wait", "0", "-f", "json"])
        assert json.loads(as_json.stdout)["status"] == "queued"
    finally:
        kill(holder)
    assert queued_rows(db) == [("stock", "[5]", "hook")] * 2

    monkeypatch.setenv("TRUEUP_ENV", "production")  # the repair refuses to write without --yes: the round fails
    failed = runner.invoke(app, ["watch", "--once", "--apply", "-c", str(path)])
    assert failed.exit_code == 2 and "refusing to write without confirmation" in failed.stderr
    assert len(queued_rows(db)) == 2  # the round that took them did not commit: still queued
    assert remaining(db)[5] == 1000

    done = runner.invoke(app, ["watch", "--once", "--apply", "--yes", "-c", str(path)])
    assert done.exit_code == 0 and "1 corrected" in done.stdout
    assert (remaining(db)[5], queued_rows(db)) == (997, [])


def test_a_queued_key_found_drifted_by_a_round_that_only_checks_stays_queued(db: Database, tmp_path: Path) -> None:
    config, _ = shop(db, tmp_path)
    engine = open_engine(db.url)
    sell(db, 5, 3, deduct=False)
    sell(db, 6, 1)
    holder = hold_lock(db)
    try:
        for item in (5, 6):
            assert trueup.sync(config, rule="stock", keys=[(item,)]).status == "queued"
    finally:
        kill(holder)
    checked = run_round(engine, config, "stock", SyncOptions(), keys=[(7,)])
    assert (checked.checked, [d.key for d in checked.drift]) == (3, [(5,)])  # 7 and the queued 5 and 6
    assert [row[1] for row in queued_rows(db)] == ["[5]"]  # 6 was clean; 5 waits for a round that repairs
    repaired = run_round(engine, config, "stock", SyncOptions(apply=True), keys=[(7,)])
    assert (repaired.corrected, queued_rows(db), remaining(db)[5]) == (1, [], 997)
    engine.dispose()


# -- a key nobody knows ------------------------------------------------------------------------


def test_syncing_a_key_nobody_knows_says_so(db: Database, tmp_path: Path) -> None:
    _, path = shop(db, tmp_path)
    sell(db, 77, 1)  # a sale of an item the recorded table lacks: known to a source, a missing row
    sync = ["sync", "-c", str(path), "-r", "stock"]
    unknown = runner.invoke(app, [*sync, "-k", "999", "-k", "1", "-k", "998"], env={"COLUMNS": "300"})
    assert unknown.exit_code == 1
    assert (
        "key_not_found: 2 named key(s) are in neither the recorded table nor any source of the rule: "
        "check the values and the order of the key's columns (999, 998)"
    ) in unknown.stdout
    document = json.loads(runner.invoke(app, [*sync, "-k", "999", "-f", "json"]).stdout)
    [finding] = [f for f in document["findings"] if f["kind"] == "key_not_found"]
    assert (finding["severity"], finding["count"], finding["sample"]) == ("error", 1, [{"key": [999]}])
    orphan = runner.invoke(app, [*sync, "-k", "77", "-f", "json"])
    assert [f["kind"] for f in json.loads(orphan.stdout)["findings"]] == ["missing_row", "negative_expected"]
    known = runner.invoke(app, [*sync, "-k", "1"])
    assert known.exit_code == 0 and "key_not_found" not in known.stdout


# -- one spelling of --format ------------------------------------------------------------------


def test_watch_and_sync_take_the_same_format_option(sqlite_db: Database, tmp_path: Path) -> None:
    _, path = shop(sqlite_db, tmp_path)
    for command in (["watch", "--once"], ["sync", "-r", "stock", "-k", "1"]):
        for spelling in (["--format", "json"], ["-f", "json"], ["--log-format", "json"]):
            result = runner.invoke(app, [*command, "-c", str(path), *spelling])
            assert json.loads(result.stdout)["status"] == "clean", (command, spelling)
        for spelling in (["--format", "text"], ["--format", "table"]):
            result = runner.invoke(app, [*command, "-c", str(path), *spelling])
            assert "checked, 0 drifted" in result.stdout


def test_a_rounds_table_made_by_an_older_trueup_gains_the_message_column(db: Database, tmp_path: Path) -> None:
    config, _ = shop(db, tmp_path, count=40)
    old = sa.MetaData()
    columns = [c for c in history.rounds.columns if c.name != "message"]  # the shape of 0.1
    sa.Table("trueup_rounds", old, *[sa.Column(c.name, c.type, primary_key=c.primary_key) for c in columns])
    old.create_all(db.engine)
    bump(db, 1, 2, 3)
    engine = open_engine(db.url)
    result = run_round(engine, config, "stock", SyncOptions(apply=True))
    assert result.status == "refused"
    assert "more than a round may make on its own" in db.scalar("SELECT message FROM trueup_rounds")
    engine.dispose()


# -- interrupts --------------------------------------------------------------------------------


class Lines:
    """A child's output stream, read by a thread; `wait_for` waits for a line, never for a time."""

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        self.closed = False
        self._arrived = threading.Condition()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream) -> None:
        for line in stream:
            with self._arrived:
                self.lines.append(line)
                self._arrived.notify_all()
        with self._arrived:
            self.closed = True
            self._arrived.notify_all()

    def wait_for(self, text: str) -> None:
        with self._arrived:  # the deadline is for a child that died, not a window for it to act in
            self._arrived.wait_for(lambda: self.closed or any(text in line for line in self.lines), timeout=300)
            assert any(text in line for line in self.lines), (text, self.lines)


def watching(path: Path, *extra: str) -> tuple[subprocess.Popen, Lines, Lines]:
    child = subprocess.Popen(
        [sys.executable, "-m", "trueup.cli", "watch", "-c", str(path), "--every", "1h", "--apply",
         "--max-changes", "100", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    return child, Lines(child.stdout), Lines(child.stderr)


def test_a_first_signal_stops_watch_after_the_round_and_says_so(db: Database, tmp_path: Path) -> None:
    _, path = shop(db, tmp_path)
    sell(db, 3, 4, deduct=False)
    holder = hold_lock(db)  # the round waits for it: the signal arrives while the round is under way
    child, out, err = watching(path, "--wait", "600")
    err.wait_for("watching 1 rule(s)")
    child.send_signal(signal.SIGTERM)
    err.wait_for("stopping after this round")
    kill(holder)
    assert child.wait(timeout=300) == 0
    assert len(out.lines) == 1 and "1 drifted, 1 corrected" in out.lines[0]  # the round ended, then watch did
    assert remaining(db)[3] == 996


def test_a_second_signal_stops_watch_at_once_with_130(db: Database, tmp_path: Path) -> None:
    _, path = shop(db, tmp_path)
    sell(db, 3, 4, deduct=False)
    holder = hold_lock(db)
    try:
        child, out, err = watching(path, "--wait", "600")
        err.wait_for("watching 1 rule(s)")
        child.send_signal(signal.SIGINT)
        err.wait_for("stopping after this round")
        child.send_signal(signal.SIGINT)
        assert child.wait(timeout=300) == 130, err.lines
        err.wait_for("interrupted: the round under way was rolled back")
        assert out.lines == [] and remaining(db)[3] == 1000
    finally:
        kill(holder)


def waiting_on(db: Database, blocker: sa.Connection) -> int:
    """How many sessions of this test's own database wait for a lock (other tests may run beside it)."""
    if db.kind == "postgresql":
        pid = blocker.execute(sa.text("SELECT pg_backend_pid()")).scalar()
        return db.scalar("SELECT COUNT(*) FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))", {"pid": pid})
    return db.scalar(
        "SELECT COUNT(*) FROM information_schema.innodb_trx t JOIN information_schema.processlist p"
        " ON p.id = t.trx_mysql_thread_id WHERE t.trx_state = 'LOCK WAIT' AND p.db = DATABASE()"
    )


def test_a_second_signal_rolls_back_the_repair_under_way(server_db: Database, tmp_path: Path) -> None:
    db = server_db
    config, path = shop(db, tmp_path)
    sell(db, 3, 4, deduct=False)
    with db.engine.connect() as blocker:
        blocker.execute(sa.select(items.c.id).where(items.c.id == 3).with_for_update())  # the repair waits for it
        child, _, err = watching(path)
        while not waiting_on(db, blocker):  # the event: the round's repair is waiting on our row lock
            assert child.poll() is None, err.lines
            time.sleep(0.25)  # MariaDB refreshes innodb_trx only when it was not read for 0.1 s
        child.send_signal(signal.SIGTERM)
        err.wait_for("stopping after this round")
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=300) == 130
        blocker.rollback()
    err.wait_for("interrupted: the round under way was rolled back")
    assert remaining(db)[3] == 1000
    assert db.scalar("SELECT COUNT(*) FROM trueup_runs") == 0  # the run it had begun to write rolled back
    assert db.scalar("SELECT COUNT(*) FROM trueup_rounds") == 0
    after = run_round(open_engine(db.url), config, "stock", SyncOptions(apply=True, wait=30))  # the lock is free
    assert (after.status, remaining(db)[3]) == ("corrected", 996)
