"""Safety under failure: apply killed at random points, and apply beside concurrent writers.

Crash: a child process applies 4,000 corrections and is SIGKILLed after a
random delay, 20+ times per database. After each kill the table must be
wholly as before or wholly corrected, and the audit must say the same.

Concurrency: 8 threads sell stock the way an app does (insert a usage record
and decrement the cached figure, in one transaction) while apply corrects
drift on the same items. Afterwards `check` must be clean *without* another
apply: a correction that overwrote a sale would leave drift behind, and every
committed sale must be there.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

import trueup
from tests.databases import Database
from trueup.config import parse_config
from trueup.reconcile import audit

ITEMS = 4000
KILLS = 12  # per database: 36 kill points over the three

metadata = sa.MetaData()
items = sa.Table(
    "items",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("total", sa.Integer, nullable=False),
    sa.Column("remaining", sa.Integer, nullable=False),
)
usage = sa.Table(
    "usage",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("item_id", sa.Integer, nullable=False, index=True),
    sa.Column("qty", sa.Integer, nullable=False),
)


RULE = {
    "name": "stock",
    "recorded": {"table": "items", "key": ["id"], "quantity": "remaining"},
    "expected": [
        {"table": "items", "key": ["id"], "quantity": "total"},
        {"table": "usage", "key": ["item_id"], "quantity": "qty", "sign": -1},
    ],
}


def rule_config(db: Database):
    return parse_config({"database": {"url": db.url}, "rules": [RULE]})


def load(db: Database, count: int, uses_per_item: int) -> None:
    """Every item opens with 100; each use takes 1..3 and was never deducted (all drifted)."""
    db.create(metadata)
    rng = random.Random(7)
    db.insert(items, [{"id": i, "total": 100, "remaining": 100} for i in range(1, count + 1)])
    db.insert(
        usage, [{"item_id": i, "qty": rng.randint(1, 3)} for i in range(1, count + 1) for _ in range(uses_per_item)]
    )


APPLY = textwrap.dedent(
    """
    import sys, trueup
    from trueup.config import parse_config
    rule = {"name": "stock", "recorded": {"table": "items", "key": ["id"], "quantity": "remaining"},
            "expected": [{"table": "items", "key": ["id"], "quantity": "total"},
                         {"table": "usage", "key": ["item_id"], "quantity": "qty", "sign": -1}]}
    config = parse_config({"database": {"url": sys.argv[1]}, "rules": [rule]})
    print("go", flush=True)
    trueup.apply(config, backup_dir=None)
    print("done", flush=True)
    """
)


def start_apply(db: Database) -> tuple[subprocess.Popen, float]:
    child = subprocess.Popen([sys.executable, "-c", APPLY, db.url], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "go"
    return child, time.monotonic()


def state(db: Database) -> tuple[str, list[tuple]]:
    """'before' (nothing written), 'after' (everything written) or 'mixed'; and the runs recorded."""
    with db.engine.connect() as connection:
        used = sa.select(usage.c.item_id, 100 - sa.func.sum(usage.c.qty)).group_by(usage.c.item_id)
        truth = dict(connection.execute(used).all())
        remaining = dict(connection.execute(sa.select(items.c.id, items.c.remaining)).all())
    if all(v == 100 for v in remaining.values()):
        table = "before"
    elif all(remaining[k] == truth[k] for k in remaining):
        table = "after"
    else:
        table = "mixed"
    has_audit = sa.inspect(db.engine).has_table("trueup_runs")
    runs = db.rows("SELECT id, updated, status FROM trueup_runs") if has_audit else []
    changes = db.rows("SELECT COUNT(*), SUM(CAST(before_value AS INTEGER)) FROM trueup_changes") if has_audit else []
    return table, [*runs, *changes]


@pytest.mark.slow
def test_apply_killed_at_random_points_is_all_or_nothing(db: Database) -> None:
    load(db, ITEMS, 2)
    child, started = start_apply(db)  # one undisturbed run, to learn how long an apply takes
    child.wait(timeout=120)
    duration = time.monotonic() - started
    assert state(db)[0] == "after"

    rng = random.Random(11)
    seen = {"before": 0, "after": 0}
    for _ in range(KILLS):
        db.execute("UPDATE items SET remaining = 100")
        db.execute("DELETE FROM trueup_changes")
        db.execute("DELETE FROM trueup_runs")
        child, _ = start_apply(db)
        time.sleep(rng.uniform(0, duration * 1.1))
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        table, audit = _settled_state(db)
        seen[table] += 1
        if table == "before":
            assert audit == [(0, None)], audit  # no run, no changes
        else:
            [(_run_id, updated, status), (changes, before_sum)] = audit
            assert updated == ITEMS and changes == ITEMS and before_sum == 100 * ITEMS
            assert status in ("applied", "verified")  # killed before or after verify finished
    assert seen["before"] and seen["after"], f"kills never landed on both sides of the commit: {seen}"


def _settled_state(db: Database) -> tuple[str, list[tuple]]:
    """The state once the server has noticed the dead client (its transaction rolls back)."""
    for _ in range(50):
        try:
            table, audit = state(db)
        except DBAPIError:  # e.g. SQLite still locked for a moment
            time.sleep(0.1)
            continue
        assert table != "mixed", "a killed apply left the table half-written"
        return table, audit
    raise AssertionError("the database never settled after the kill")


WRITERS = 8


def sell(db: Database, stop: threading.Event, sold: list[int], errors: list[BaseException]) -> None:
    """The app's sale: record the usage and decrement the cached figure, in one transaction."""
    rng = random.Random(threading.get_ident())
    engine = sa.create_engine(db.url, connect_args={"timeout": 30} if db.kind == "sqlite" else {})
    try:
        while not stop.is_set():
            item, qty = rng.randint(1, 50), rng.randint(1, 2)
            try:
                with engine.begin() as connection:
                    connection.execute(usage.insert().values(item_id=item, qty=qty))
                    connection.execute(
                        items.update().where(items.c.id == item).values(remaining=items.c.remaining - qty)
                    )
                sold.append(qty)
            except DBAPIError as error:  # a deadlock victim or busy database: the sale did not happen
                if "deadlock" not in str(error).lower() and "locked" not in str(error).lower():
                    errors.append(error)
    finally:
        engine.dispose()


@pytest.mark.slow
def test_apply_beside_eight_concurrent_sellers_loses_no_sale(db: Database) -> None:
    load(db, 50, 3)
    with db.engine.connect() as connection:
        initial_usage = connection.execute(sa.select(sa.func.max(usage.c.id))).scalar_one()
    config = rule_config(db)
    stop, sold, errors = threading.Event(), [], []
    threads = [threading.Thread(target=sell, args=(db, stop, sold, errors)) for _ in range(WRITERS)]
    for thread in threads:
        thread.start()
    applied = 0
    try:
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            db.execute("UPDATE items SET remaining = remaining + 5 WHERE id % 7 = 0")  # fresh drift to correct
            # the sellers may oversell: negative figures are flagged, written all the same here
            result = trueup.apply(config, backup_dir=None, lock_timeout=30, include_flagged=True)
            applied += result.changed
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert not errors, errors[0]
    assert applied > 0 and len(sold) > 100, (applied, len(sold))

    report = trueup.check(config)  # no apply after the sellers stopped: any lost sale would show here
    assert report.rules[0].drifted == 0, report.rules[0].worst
    with db.engine.connect() as connection:
        recorded_sales = sa.select(sa.func.count(), sa.func.sum(usage.c.qty)).where(usage.c.id > initial_usage)
        assert tuple(connection.execute(recorded_sales).one()) == (len(sold), sum(sold))


def test_a_sale_committed_between_computing_and_writing_is_not_lost(server_db: Database) -> None:
    """The moved-row path, made certain: the sale lands after the corrections are computed."""
    load(server_db, 5, 2)
    config = rule_config(server_db)
    sold = []

    def sell_now(phase: str) -> None:
        if phase.startswith("applying") and not sold:
            with server_db.engine.begin() as connection:
                connection.execute(usage.insert().values(item_id=3, qty=4))
                connection.execute(items.update().where(items.c.id == 3).values(remaining=items.c.remaining - 4))
            sold.append(4)

    result = trueup.apply(config, backup_dir=None, phase=sell_now)
    assert sold and result.changed == 5
    assert trueup.check(config).rules[0].drifted == 0  # the sale's decrement survived the repair
    with server_db.engine.connect() as connection:
        used = connection.execute(sa.select(sa.func.sum(usage.c.qty)).where(usage.c.item_id == 3)).scalar_one()
        before = connection.execute(
            sa.select(audit.changes.c.before_value).where(audit.changes.c.key == "[3]")
        ).scalar_one()
    assert int(before) == 100 - 4  # the pre-image is the figure the sale left, not the one computed before it
    assert used >= 4


def test_a_real_deadlock_is_recognised_as_retryable(server_db: Database):
    """Apply and the ledger post again after a deadlock; that needs the server's own error recognised."""
    from trueup.db import dialect_for

    server_db.execute("CREATE TABLE pair (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)")
    server_db.execute("INSERT INTO pair (id, n) VALUES (1, 0), (2, 0)")
    both_locked, errors = threading.Barrier(2), []

    def cross(first: int, second: int) -> None:
        try:
            with server_db.engine.begin() as connection:
                connection.execute(sa.text("UPDATE pair SET n = n + 1 WHERE id = :id"), {"id": first})
                both_locked.wait(timeout=10)
                connection.execute(sa.text("UPDATE pair SET n = n + 1 WHERE id = :id"), {"id": second})
        except DBAPIError as error:
            errors.append(error)

    threads = [threading.Thread(target=cross, args=pair) for pair in ((1, 2), (2, 1))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    [victim] = errors  # the server picked exactly one; the other committed
    assert dialect_for(server_db.engine).is_retryable(victim), victim.orig
