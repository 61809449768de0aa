"""trueup guard --mode enforce|alarm (PostgreSQL): the incident shapes replayed against a guarded shop.

Each transaction is one shape of the incidents (shared/incidents 02 and 05): a
cached figure bumped by a transfer whose record was rolled back, a sale that
never deducted, COUNT(*) written where SUM was meant, beside the correct sale
that writes its record and its figure together. Under enforce every buggy one
fails at COMMIT with SQLSTATE TU001 and leaves the database as it was; under
alarm everything commits and `trueup_violations` holds exactly the buggy ones.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from tests.databases import Database, make_database
from tests.test_guard import catalog, cli, shop
from trueup.config import load_config
from trueup.serve import tokens
from trueup.serve.app import create_app
from trueup.serve.service import Service

WRITERS = 8
PER_WRITER = 9  # transactions per writer; every third is buggy


def connect(db: Database, application: str = "pos") -> psycopg.Connection:
    url = sa.make_url(db.url)
    return psycopg.connect(
        host=url.host, port=url.port, user=url.username, dbname=url.database,
        options=url.query["options"], application_name=application,
    )  # fmt: skip


def state(db: Database) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    return db.rows("SELECT * FROM items ORDER BY id"), db.rows("SELECT * FROM moves ORDER BY id")


# The shapes: (name, statements, buggy, the key it breaks, recorded and expected at its commit).
SHAPES = [
    (
        "rolled-back transfer still bumped the figure",
        ["UPDATE items SET remaining = remaining + 5 WHERE id = 6"],
        True, [6], 105, 100,
    ),
    ("sale that never deducted", ["INSERT INTO moves VALUES (10, 7, 4, 'done')"], True, [7], 100, 96),
    (
        "COUNT(*) written where SUM was meant",
        [
            "INSERT INTO moves SELECT 20 + g, 8, 3, 'done' FROM generate_series(1, 50) g",
            "UPDATE items SET remaining = remaining - 50 WHERE id = 8",
        ],
        True, [8], 50, -50,
    ),
    (
        "correct sale",
        ["INSERT INTO moves VALUES (11, 1, 5, 'done')", "UPDATE items SET remaining = remaining - 5 WHERE id = 1"],
        False, None, None, None,
    ),
    (
        "correct sale of 50 records",
        [
            "INSERT INTO moves SELECT 100 + g, 9, 1, 'done' FROM generate_series(1, 50) g",
            "UPDATE items SET remaining = remaining - 50 WHERE id = 9",
        ],
        False, None, None, None,
    ),
    (
        "pending move done, figure deducted",
        ["UPDATE moves SET status = 'done' WHERE id = 2", "UPDATE items SET remaining = 97 WHERE id = 2"],
        False, None, None, None,
    ),
]  # fmt: skip


def run(connection: psycopg.Connection, statements: list[str]) -> None:
    with connection.transaction(), connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


def test_enforce_fails_each_buggy_transaction_at_commit_and_commits_the_correct_ones(
    pg: Database, tmp_path: Path
) -> None:
    path = shop(pg, tmp_path)
    code, out = cli(path, "guard", "install", "--rule", "stock", "--mode", "enforce", "--yes")
    assert (code, out.strip()) == (0, "rule stock: guard enforce installed: 7 trigger(s) as run 1"), out
    with connect(pg) as connection:
        for name, statements, buggy, key, recorded, expected in SHAPES:
            before = state(pg)
            if not buggy:
                run(connection, statements)
                assert state(pg) != before, name
                continue
            with pytest.raises(psycopg.Error) as failed:
                run(connection, statements)
            assert failed.value.sqlstate == "TU001", name
            first = str(failed.value).splitlines()[0]
            assert first == f"trueup guard: rule stock, key {key}: recorded {recorded}, expected {expected}", name
            assert state(pg) == before, name
    assert pg.scalar("SELECT COUNT(*) FROM trueup_touched") == 0  # each note leaves with its commit
    code, out = cli(path, "check", "--format", "json")
    assert code == 0, out  # every committed transaction was correct


def test_alarm_commits_everything_and_records_exactly_the_buggy_ones(pg: Database, tmp_path: Path) -> None:
    path = shop(pg, tmp_path)
    assert cli(path, "guard", "install", "--rule", "stock", "--mode", "alarm", "--yes")[0] == 0
    with connect(pg, "till-7") as connection:
        for name, statements, _, _, _, _ in SHAPES:
            before = state(pg)
            run(connection, statements)
            assert state(pg) != before, name
    code, out = cli(path, "guard", "violations", "--format", "json")
    assert code == 0, out
    found = json.loads(out)["violations"]
    # one row per key however many rows touched it (key 8: 51 rows), newest first
    assert [(v["rule"], v["key"], v["recorded"], v["expected"]) for v in found] == [
        ("stock", [8], 50, -50),
        ("stock", [7], 100, 96),
        ("stock", [6], 105, 100),
    ]
    assert {(v["application_name"], v["user"]) for v in found} == {("till-7", "postgres")}
    assert len({v["txid"] for v in found}) == 3
    code, out = cli(path, "guard", "violations", "--rule", "stock", "--limit", "1")
    assert code == 0
    assert out.count("\n") == 1 and " stock key [8]: recorded 50, expected -50; by postgres (till-7, " in out, out
    code, out = cli(path, "check", "--format", "json")
    assert code == 1  # alarm let the drift in: check finds the same keys
    drifted = {tuple(d["key"]) for d in json.loads(out)["rules"][0]["drift"]}
    assert drifted == {(6,), (7,), (8,)}


def writers(db: Database, mode: str) -> tuple[dict[str, int], list[tuple[str, int]]]:
    """8 writers, PER_WRITER transactions each. A correct one sells two of items 1-5 in random order (so
    deadlocks occur; they are retried and counted); every third sells one of items 6-9 without deducting.
    Returns the counts and the (writer, item) of every buggy transaction."""
    counts = {"committed": 0, "refused": 0, "false_positive": 0, "lost": 0, "deadlocks": 0}
    bugs: list[tuple[str, int]] = []
    lock = threading.Lock()
    start = threading.Barrier(WRITERS)

    def writer(number: int) -> None:
        chance = random.Random(number)
        name = f"writer-{number}"
        with connect(db, name) as connection:
            start.wait()
            for index in range(PER_WRITER):
                move = 1000 + number * 100 + index
                buggy = index % 3 == 2
                if buggy:
                    item = chance.randint(6, 9)
                    statements = [f"INSERT INTO moves VALUES ({move}, {item}, 1, 'done')"]
                else:
                    first, second = chance.sample(range(1, 6), 2)
                    statements = [
                        f"INSERT INTO moves VALUES ({move}, {first}, 1, 'done'), ({move + 50}, {second}, 2, 'done')",
                        f"UPDATE items SET remaining = remaining - 1 WHERE id = {first}",
                        f"UPDATE items SET remaining = remaining - 2 WHERE id = {second}",
                    ]
                outcome = _attempt(connection, statements, counts, lock)
                key = ("refused" if buggy else "false_positive") if outcome == "TU001" else outcome
                if outcome == "committed" and buggy and mode == "enforce":
                    key = "lost"  # a buggy commit under enforce: the guard missed it
                with lock:
                    counts[key] += 1
                    if buggy:
                        bugs.append((name, item))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return counts, bugs


def _attempt(connection: psycopg.Connection, statements: list[str], counts: dict[str, int], lock: Any) -> str:
    while True:
        try:
            run(connection, statements)
            return "committed"
        except psycopg.errors.DeadlockDetected:
            with lock:
                counts["deadlocks"] += 1
        except psycopg.Error as error:
            if error.sqlstate == "TU001":
                return "TU001"
            raise


def test_eight_concurrent_writers_under_enforce_no_false_positive_no_lost_commit(pg: Database, tmp_path: Path) -> None:
    path = shop(pg, tmp_path)
    assert cli(path, "guard", "install", "--rule", "stock", "--mode", "enforce", "--yes")[0] == 0
    counts, _ = writers(pg, "enforce")
    buggy = WRITERS * (PER_WRITER // 3)
    assert (counts["committed"], counts["refused"], counts["false_positive"], counts["lost"]) == (
        WRITERS * PER_WRITER - buggy,
        buggy,
        0,
        0,
    ), counts
    assert pg.scalar("SELECT COUNT(*) FROM moves WHERE id >= 1000") == 2 * (WRITERS * PER_WRITER - buggy)
    print(f"enforce, {WRITERS} writers: {counts}")
    code, out = cli(path, "check", "--format", "json")
    assert code == 0, out


def test_eight_concurrent_writers_under_alarm_commit_all_and_record_the_buggy(pg: Database, tmp_path: Path) -> None:
    path = shop(pg, tmp_path)
    assert cli(path, "guard", "install", "--rule", "stock", "--mode", "alarm", "--yes")[0] == 0
    counts, bugs = writers(pg, "alarm")
    assert (counts["committed"], counts["false_positive"]) == (WRITERS * PER_WRITER, 0), counts
    found = json.loads(cli(path, "guard", "violations", "--limit", "1000", "--format", "json")[1])["violations"]
    assert sorted((v["application_name"], v["key"][0]) for v in found) == sorted(bugs)
    assert len({v["txid"] for v in found}) == len(bugs) == WRITERS * (PER_WRITER // 3)
    assert all(v["recorded"] == 100 and v["expected"] < 100 for v in found)


def test_enforce_install_twice_is_a_no_op_and_remove_restores_the_catalog(pg: Database, tmp_path: Path) -> None:
    path = shop(pg, tmp_path)
    before = catalog(pg)
    code, out = cli(path, "guard", "plan", "--rule", "stock", "--mode", "enforce")
    assert code == 0 and "DEFERRABLE INITIALLY DEFERRED" in out, out
    assert catalog(pg) == before
    assert cli(path, "guard", "install", "--rule", "stock", "--mode", "enforce", "--yes")[0] == 0
    installed = catalog(pg)
    assert len(installed) == len(before) + 14  # 7 triggers, 7 functions
    code, out = cli(path, "guard", "install", "--rule", "stock", "--mode", "enforce", "--yes")
    assert (code, "nothing to do" in out) == (0, True), out
    assert catalog(pg) == installed
    code, out = cli(path, "guard", "install", "--rule", "stock", "--mode", "alarm", "--yes")
    assert (code, "replacing run 1" in out) == (0, True), out
    assert cli(path, "guard", "remove", "--rule", "stock", "--yes")[0] == 0
    assert catalog(pg) == before
    pg.execute("UPDATE items SET remaining = 1 WHERE id = 1")  # unguarded again


def test_a_killed_install_leaves_nothing_half_installed(pg: Database, tmp_path: Path) -> None:
    """SIGKILL a real `trueup guard install` while it waits, inside its transaction, for a lock the test holds."""
    path = shop(pg, tmp_path)
    before = catalog(pg)
    with connect(pg) as holder:
        holder.execute("LOCK TABLE moves IN ACCESS EXCLUSIVE MODE")  # its items triggers go first, then it waits
        trueup = str(Path(sys.executable).parent / "trueup")
        command = [trueup, "guard", "install", "--rule", "stock", "--mode", "enforce", "--yes", "--config", str(path)]
        child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            _wait_for(lambda: holder.execute(
                "SELECT COUNT(*) FROM pg_locks WHERE NOT granted AND relation = 'moves'::regclass"
            ).fetchone()[0] == 1, child)  # fmt: skip
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
        finally:
            if child.poll() is None:
                child.kill()
        holder.rollback()
    assert child.returncode == -signal.SIGKILL
    assert catalog(pg) == before
    assert cli(path, "guard", "status")[1].strip() == "no guards installed"
    assert cli(path, "guard", "install", "--rule", "stock", "--mode", "enforce", "--yes")[0] == 0


def _wait_for(condition: Callable[[], bool], child: subprocess.Popen[bytes]) -> None:
    """Until `condition` holds; fails at once if the child exits first (its output says why)."""
    while not condition():
        time.sleep(0.02)
        if child.poll() is not None:
            pytest.fail(f"install ended before it blocked: {child.stdout.read().decode() if child.stdout else ''}")


@pytest.mark.parametrize("kind", ["sqlite", "mariadb"])
@pytest.mark.parametrize("mode", ["alarm", "enforce"])
def test_alarm_and_enforce_are_refused_where_no_check_at_commit_exists(kind: str, mode: str, tmp_path: Path) -> None:
    db, drop = make_database(kind, tmp_path)
    try:
        path = shop(db, tmp_path)
        for command in (["plan"], ["install", "--yes"]):
            code, out = cli(path, "guard", *command, "--rule", "stock", "--mode", mode)
            assert code == 2, out
            assert out.count("\n") == 1, out
            assert "only --mode capture works (alarm and enforce: PostgreSQL)" in out
        assert catalog(db) == []
        assert not sa.inspect(db.engine).has_table("trueup_runs")
    finally:
        drop()


def test_the_service_lists_guards_and_violations_and_the_dashboard_shows_them(pg: Database, tmp_path: Path) -> None:
    path = shop(pg, tmp_path)
    assert cli(path, "guard", "install", "--rule", "stock", "--mode", "alarm", "--yes")[0] == 0
    with connect(pg, "till-3") as connection:
        run(connection, ["UPDATE items SET remaining = 77 WHERE id = 3"])
    with pg.engine.connect() as connection:
        secret = tokens.create(connection, "reader", "read")
    auth = {"Authorization": f"Bearer {secret}"}
    with TestClient(create_app(Service(load_config(path))), raise_server_exceptions=False) as web:
        assert web.get("/api/guard").status_code == 401
        answer = web.get("/api/guard", headers=auth)
        assert answer.status_code == 200, answer.text
        (row,) = answer.json()["guards"]
        assert (row["rule"], row["mode"], row["tables"], row["complete"]) == (
            "stock",
            "alarm",
            ["items", "moves"],
            True,
        )
        answer = web.get("/api/guard/violations", params={"rule": "stock"}, headers=auth)
        (found,) = answer.json()["violations"]
        assert (found["key"], found["recorded"], found["expected"], found["application_name"]) == (
            [3],
            77,
            100,
            "till-3",
        )
        assert web.get("/api/guard/violations", params={"limit": 0}, headers=auth).status_code == 400
        assert web.get("/api/guard/violations", params={"rule": "other"}, headers=auth).json() == {"violations": []}
        form = web.get("/signin")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)  # type: ignore[union-attr]
        web.post("/signin", data={"token": secret, "csrf": csrf}, follow_redirects=False)
        page = web.get("/guard")
        assert page.status_code == 200
        assert "<td>stock</td><td>alarm</td><td>items, moves</td>" in page.text
        assert '<td>stock</td><td>3</td><td class="num">77</td>' in page.text and "till-3" in page.text


def test_under_capture_a_round_after_the_writers_finds_exactly_the_injected_drift(pg: Database, tmp_path: Path) -> None:
    path = shop(pg, tmp_path)
    assert cli(path, "guard", "install", "--rule", "stock", "--mode", "capture", "--yes")[0] == 0
    assert json.loads(cli(path, "watch", "--once", "--format", "json")[1])["kind"] == "full"
    counts, bugs = writers(pg, "capture")
    assert counts["committed"] == WRITERS * PER_WRITER, counts
    pg.execute("UPDATE moves SET status = 'done' WHERE id = 2")  # a status flipped in place, never deducted
    pg.execute("UPDATE items SET remaining = remaining + 10 WHERE id = 1")  # a hand edit of the cached figure
    touched = {json.loads(k)[0] for (k,) in pg.rows('SELECT "key" FROM trueup_dirty')}
    assert touched == set(range(1, 10))  # every item was sold, flipped or edited
    code, out = cli(path, "watch", "--once", "--format", "json")
    round_ = json.loads(out)
    assert code == 1, out
    assert (round_["kind"], round_["checked"]) == ("incremental", len(touched))
    injected = {item: -sum(1 for _, i in bugs if i == item) for item in range(6, 10)}
    injected = {**{k: v for k, v in injected.items() if v}, 2: -3, 1: -10}
    assert {d["key"][0]: d["delta"] for d in round_["drift"]} == injected


def test_enforce_applies_the_rules_tolerance_as_check_does(pg: Database, tmp_path: Path) -> None:
    path = shop(pg, tmp_path)
    path.write_text(path.read_text().replace('name = "stock"\n', 'name = "stock"\ntolerance = 2\n'))
    assert cli(path, "guard", "install", "--rule", "stock", "--mode", "enforce", "--yes")[0] == 0
    with connect(pg) as connection:
        run(connection, ["UPDATE items SET remaining = 102 WHERE id = 1"])  # within 2: check calls it no drift
        with pytest.raises(psycopg.Error) as failed:
            run(connection, ["UPDATE items SET remaining = 103 WHERE id = 2"])
    assert failed.value.sqlstate == "TU001"
    assert str(failed.value).splitlines()[0] == "trueup guard: rule stock, key [2]: recorded 103, expected 100"
    assert pg.rows("SELECT remaining FROM items WHERE id IN (1, 2) ORDER BY id") == [(102,), (100,)]
    code, out = cli(path, "check", "--format", "json")
    assert (code, json.loads(out)["rules"][0]["drifted"]) == (0, 0), out
