"""The ledger under concurrent writers and a killed writer, in real separate processes.

SQLite and PostgreSQL, as the issue asks, and MariaDB, which shares PostgreSQL's
row-lock design (READ COMMITTED matters there: under its default REPEATABLE
READ, a posting that read anything before waiting for the item lock, such as
its idempotency key, would go on seeing balances as of that first read).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from decimal import Decimal

import pytest
import sqlalchemy as sa

from tests.databases import make_database
from trueup.ledger import InsufficientStock, Ledger

FORK = multiprocessing.get_context("fork")
ROUNDS = 12
WRITERS = 8
POSTINGS = 190  # per writer: about 2,000 transactions in all (transfers post two)
HOT = ("hot-1", "hot-2", "hot-3")


@pytest.fixture(params=("sqlite", "postgresql", "mariadb"))
def url(request, tmp_path):
    database, drop = make_database(request.param, tmp_path)
    Ledger(database.url).close()  # create the schema before the writers start
    database.engine.dispose()
    try:
        yield database.url
    finally:
        drop()


def run_all(target, arguments: list[tuple]) -> None:
    """Run `target` once per argument tuple, each in its own process, and wait for all to succeed."""
    processes = [FORK.Process(target=target, args=args) for args in arguments]
    for process in processes:
        process.start()
    for process in processes:
        process.join(240)
        assert process.exitcode == 0


def _race(url: str, barrier, wins) -> None:
    with Ledger(url) as ledger:
        for round_ in range(ROUNDS):
            barrier.wait()
            try:
                ledger.issue(f"last-{round_}", "shop", 1)
                wins.put(round_)
            except InsufficientStock:
                pass


def test_two_processes_racing_for_the_last_unit_exactly_one_wins(url):
    with Ledger(url) as ledger:
        for round_ in range(ROUNDS):
            ledger.receive(f"last-{round_}", "shop", 1, unit_cost=1)
    barrier, wins = FORK.Barrier(2), FORK.Queue()
    run_all(_race, [(url, barrier, wins)] * 2)
    won = sorted(wins.get(timeout=5) for _ in range(ROUNDS))
    assert won == list(range(ROUNDS)) and wins.empty()  # each last unit went to exactly one process
    with Ledger(url) as ledger:
        assert all(ledger.balance(f"last-{r}", "shop") == 0 for r in range(ROUNDS))
        assert ledger.verify().ok


def _write(url: str, writer: int, results) -> None:
    """Receive, sell and move units of the hot items; report what was accepted."""
    received = dict.fromkeys(HOT, Decimal(0))
    issued = dict.fromkeys(HOT, Decimal(0))
    postings = 0
    with Ledger(url) as ledger:
        for n in range(POSTINGS):
            item = HOT[(writer + n) % len(HOT)]
            step = n % 3
            try:
                if step == 0:
                    ledger.receive(item, "shop", 2, unit_cost="1.5", key=f"w{writer}-{n}")
                    received[item] += 2
                elif step == 1:
                    ledger.issue(item, "shop", 1)
                    issued[item] += 1
                else:
                    ledger.transfer(item, "shop", "back", 1)
                    ledger.transfer(item, "back", "shop", 1)
                    postings += 1
                postings += 1
            except InsufficientStock:
                pass
    results.put((received, issued, postings))


def test_eight_writers_lose_no_update(url):
    results = FORK.Queue()
    run_all(_write, [(url, w, results) for w in range(WRITERS)])
    reports = [results.get(timeout=5) for _ in range(WRITERS)]
    received = {item: sum(r[0][item] for r in reports) for item in HOT}
    issued = {item: sum(r[1][item] for r in reports) for item in HOT}
    postings = sum(r[2] for r in reports)
    assert postings > 1500
    with Ledger(url) as ledger:
        for item in HOT:
            assert ledger.balance(item) == received[item] - issued[item]
            assert ledger.balance(item, "back") == 0
        engine = ledger.engine
        with engine.connect() as connection:
            versions = dict(connection.execute(sa.text("SELECT item, version FROM ledger_items")).all())
            logged = dict(
                connection.execute(sa.text("SELECT item, COUNT(*) FROM ledger_transactions GROUP BY item")).all()
            )
        assert sum(logged.values()) == postings
        # every posting bumped its item's version once, refusals rolled back with theirs: none lost
        assert all(versions[item] == logged[item] for item in HOT)
        assert ledger.verify().ok


def _split_forever(url: str) -> None:
    with Ledger(url) as ledger:
        n = 0
        while True:
            n += 1
            ledger.receive("roll", "yard", 10, unit_cost="0.25", lot=f"R{n}")
            ledger.split(f"R{n}", [1, 1, 1, 1, 1], item="roll")


def _wait_for_commits(url: str, writer, count: int) -> None:
    """Until `writer` has committed `count` ledger transactions, read through a plain engine: opening a
    Ledger beside it would race its own opening (SQLite: "database is locked")."""
    engine = sa.create_engine(url)
    try:
        while True:
            assert writer.is_alive(), writer.exitcode
            try:
                with engine.connect() as connection:
                    if connection.execute(sa.text("SELECT COUNT(*) FROM ledger_transactions")).scalar() >= count:
                        return
            except sa.exc.DBAPIError:  # not made yet, or locked by the writer for a moment
                pass
            time.sleep(0.05)
    finally:
        engine.dispose()


def test_a_writer_killed_midway_leaves_only_whole_transactions(url):
    writer = FORK.Process(target=_split_forever, args=(url,))
    writer.start()
    _wait_for_commits(url, writer, 6)  # the event: a few receive/split pairs are committed
    os.kill(writer.pid, signal.SIGKILL)
    writer.join(10)
    with Ledger(url) as ledger:
        with ledger.engine.connect() as connection:
            lines = connection.execute(
                sa.text(
                    "SELECT t.kind, COUNT(m.line) FROM ledger_transactions t "
                    "LEFT JOIN ledger_movements m ON m.item = t.item AND m.transaction_id = t.id "
                    "GROUP BY t.id, t.kind"
                )
            ).all()
        assert len(lines) > 4
        assert {(kind, n) for kind, n in lines} <= {("receive", 1), ("split", 5)}
        assert ledger.verify().ok
        assert ledger.balance("roll") == 10 * sum(1 for kind, _ in lines if kind == "receive")


def _retry(url: str, barrier, ids) -> None:
    with Ledger(url) as ledger:
        for round_ in range(ROUNDS):
            barrier.wait()
            ids.put((round_, ledger.receive("nut", "shop", 5, unit_cost="0.1", key=f"po-{round_}").id))


def test_the_same_key_posted_at_once_by_two_processes_posts_once(url):
    barrier, ids = FORK.Barrier(2), FORK.Queue()
    run_all(_retry, [(url, barrier, ids)] * 2)
    seen: dict[int, set[int]] = {}
    for _ in range(2 * ROUNDS):
        round_, number = ids.get(timeout=5)
        seen.setdefault(round_, set()).add(number)
    assert all(len(numbers) == 1 for numbers in seen.values())  # both got the same transaction back
    with Ledger(url) as ledger:
        assert ledger.balance("nut") == 5 * ROUNDS
