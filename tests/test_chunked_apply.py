"""Chunked apply (`apply --chunk-size N`), killed and resumed (`apply --resume RUN`), and undone.

60 items open with 100 and each has uses never deducted, so every item drifts; the truth is 100 minus its
uses. A child process applies in chunks of 7 keys and, after chunk K commits, says so and waits; the test
SIGKILLs it there (no sleeps), then resumes from the CLI. Chunks are key-ordered, so after chunk K exactly
the items 1..7K hold the truth and the rest still hold 100.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

import trueup
from tests.databases import Database
from tests.test_repair_safety import RULE, items, load, rule_config, sell, usage
from trueup.cli import app

COUNT, SIZE = 60, 7
CHUNKS = -(-COUNT // SIZE)  # 9: eight of 7 keys and one of 4
runner = CliRunner()

CHILD = textwrap.dedent(
    """
    import sys, trueup
    from tests.test_repair_safety import rule_config
    from tests.databases import Database

    url, where, at, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    inside = []

    def progress(done, total):  # after chunk `done` committed
        print(f"chunk {done}/{total}", flush=True)
        if where == "after" and done == at:
            sys.stdin.readline()  # wait here to be killed

    def phase(name):  # inside a chunk's transaction, its corrections computed, before it commits
        if name.startswith("applying"):
            inside.append(name)
            if where == "inside" and len(inside) == at:
                print(f"inside {at}", flush=True)
                sys.stdin.readline()

    class Url:
        url = sys.argv[1]

    trueup.apply(rule_config(Url), backup_dir=None, chunk_size=size, progress=progress, phase=phase,
                 include_flagged=True)
    print("done", flush=True)
    """
)


def config_file(db: Database, tmp_path: Path) -> Path:
    """RULE as a TOML file (JSON strings and lists of strings are TOML too)."""

    def table(header: str, values: dict) -> str:
        return "\n".join([header, *(f"{name} = {json.dumps(value)}" for name, value in values.items())])

    parts = [table("[database]", {"url": db.url}), table("[[rules]]", {"name": RULE["name"]})]
    parts += [table("[rules.recorded]", RULE["recorded"])]
    parts += [table("[[rules.expected]]", source) for source in RULE["expected"]]
    path = tmp_path / "trueup.toml"
    path.write_text("\n\n".join(parts) + "\n")
    return path


def cli(*args: str):
    return runner.invoke(app, list(args))


def remaining(db: Database) -> dict[int, int]:
    with db.engine.connect() as connection:
        return dict(connection.execute(sa.select(items.c.id, items.c.remaining)).all())


def truth(db: Database) -> dict[int, int]:
    with db.engine.connect() as connection:
        used = dict(
            connection.execute(sa.select(usage.c.item_id, sa.func.sum(usage.c.qty)).group_by(usage.c.item_id)).all()
        )
        totals = dict(connection.execute(sa.select(items.c.id, items.c.total)).all())
    return {key: total - used.get(key, 0) for key, total in totals.items()}


def kill_after(db: Database, chunk: int, where: str = "after") -> int:
    """Run the chunked apply in a child, SIGKILL it once chunk `chunk` has committed (or, `where="inside"`,
    inside chunk `chunk`'s transaction); return the run id."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, db.url, where, str(chunk), str(SIZE)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parent.parent,
    )
    signal_line = f"chunk {chunk}/{CHUNKS}" if where == "after" else f"inside {chunk}"
    try:
        while (line := child.stdout.readline().strip()) != signal_line:
            assert line, "the child ended before the point it was to be killed at"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    return db.scalar("SELECT MAX(id) FROM trueup_runs")


def test_a_chunked_apply_gives_the_state_one_transaction_gives(db: Database, tmp_path: Path) -> None:
    load(db, COUNT, 2)
    expected = truth(db)
    seen = []
    result = trueup.apply(rule_config(db), backup_dir=None, chunk_size=SIZE, progress=lambda d, t: seen.append((d, t)))
    assert (result.status, result.changed, result.exit_code) == ("verified", COUNT, 0)
    assert seen == [(k, CHUNKS) for k in range(1, CHUNKS + 1)]
    assert remaining(db) == expected
    assert db.rows("SELECT updated, status FROM trueup_runs") == [(COUNT, "verified")]
    assert db.scalar("SELECT COUNT(*) FROM trueup_changes") == COUNT
    assert db.scalar("SELECT COUNT(*) FROM trueup_chunks WHERE committed_at IS NOT NULL") == CHUNKS

    undone = cli("undo", str(result.run_id), "--config", str(config_file(db, tmp_path)))
    assert undone.exit_code == 0, undone.output
    assert set(remaining(db).values()) == {100}


@pytest.mark.parametrize("chunk", [1, 4, CHUNKS - 1])
def test_a_killed_chunked_apply_resumes_to_the_one_transaction_state(db: Database, tmp_path: Path, chunk: int) -> None:
    load(db, COUNT, 2)
    expected = truth(db)
    run_id = kill_after(db, chunk)
    now = remaining(db)
    written = chunk * SIZE
    assert {k: now[k] for k in range(1, written + 1)} == {k: expected[k] for k in range(1, written + 1)}
    assert {now[k] for k in range(written + 1, COUNT + 1)} == {100}
    assert db.rows("SELECT updated, status FROM trueup_runs") == [(written, "applying")]

    resumed = cli("apply", "--resume", str(run_id), "--config", str(config_file(db, tmp_path)), "--format", "json")
    assert resumed.exit_code == 0, resumed.output
    document = json.loads(resumed.output)
    assert (document["run_id"], document["changed"]) == (run_id, COUNT - written)
    assert remaining(db) == expected
    assert db.rows("SELECT updated, status FROM trueup_runs") == [(COUNT, "verified")]
    assert db.scalar("SELECT COUNT(*) FROM trueup_changes") == COUNT

    again = cli("apply", "--resume", str(run_id), "--config", str(config_file(db, tmp_path)))
    assert again.exit_code == 1
    assert f"run {run_id} is not unfinished (it is verified): there is nothing to resume" in again.output


def test_a_killed_chunked_apply_is_undone_whole_and_cannot_be_resumed(db: Database, tmp_path: Path) -> None:
    load(db, COUNT, 2)
    config = str(config_file(db, tmp_path))
    run_id = kill_after(db, 3)
    assert sum(1 for value in remaining(db).values() if value != 100) == 3 * SIZE

    undone = cli("undo", str(run_id), "--config", config)
    assert undone.exit_code == 0, undone.output
    assert set(remaining(db).values()) == {100}
    refused = cli("apply", "--resume", str(run_id), "--config", config)
    assert refused.exit_code == 1
    assert f"run {run_id} is not unfinished (it is undone)" in refused.output


def test_only_a_chunked_run_can_be_resumed(db: Database, tmp_path: Path) -> None:
    load(db, COUNT, 2)
    config = str(config_file(db, tmp_path))
    whole = trueup.apply(rule_config(db), backup_dir=None)
    refused = cli("apply", "--resume", str(whole.run_id), "--config", config)
    assert refused.exit_code == 2
    assert f"run {whole.run_id} is not a chunked apply (apply --chunk-size): there is nothing to resume" in (
        refused.output
    )
    missing = cli("apply", "--resume", "999", "--config", config)
    assert missing.exit_code == 2
    assert "no run 999 in this database" in missing.output
    mixed = cli("apply", "--resume", str(whole.run_id), "--chunk-size", "5", "--config", config)
    assert mixed.exit_code == 2


def test_the_guard_rails_see_the_whole_chunked_run(db: Database, tmp_path: Path) -> None:
    load(db, COUNT, 2)
    refused = cli(
        "apply", "--chunk-size", "5", "--max-changes", str(COUNT - 1), "--config", str(config_file(db, tmp_path))
    )
    assert refused.exit_code == 1, refused.output
    assert set(remaining(db).values()) == {100}
    assert db.scalar("SELECT COUNT(*) FROM trueup_runs") == 0


def test_killed_and_resumed_beside_concurrent_sellers_loses_no_sale(db: Database) -> None:
    load(db, COUNT, 2)
    with db.engine.connect() as connection:
        initial_usage = connection.execute(sa.select(sa.func.max(usage.c.id))).scalar_one()
    stop, sold, errors = threading.Event(), [], []
    threads = [threading.Thread(target=sell, args=(db, stop, sold, errors)) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        run_id = kill_after(db, 4)
        resumed = trueup.resume(run_id, rule_config(db))
        assert (resumed.run_id, resumed.status) == (run_id, "verified")
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert not errors, errors[0]
    assert remaining(db) == truth(db)  # every drifted key corrected, no sale overwritten
    assert trueup.check(rule_config(db)).rules[0].drifted == 0
    with db.engine.connect() as connection:
        recorded_sales = sa.select(sa.func.count(), sa.func.sum(usage.c.qty)).where(usage.c.id > initial_usage)
        assert tuple(connection.execute(recorded_sales).one()) == (len(sold), sum(sold) if sold else None)


# Twenty random kill points in all, shared among the three databases (each kill and resume is a child process).
KILL_POINTS = {"postgresql": 7, "mariadb": 7, "sqlite": 6}


@pytest.mark.slow
def test_killed_at_twenty_random_points_beside_four_sellers_resumes_to_the_truth(db: Database, tmp_path: Path) -> None:
    load(db, COUNT, 2)
    config = str(config_file(db, tmp_path))
    rng = random.Random(f"14-{db.kind}")
    for _ in range(KILL_POINTS[db.kind]):
        db.execute("UPDATE items SET remaining = remaining + 5")  # every item drifts again
        where = rng.choice(["after", "inside"])
        point = rng.randint(1, CHUNKS - 1) if where == "after" else rng.randint(1, CHUNKS)
        stop, sold, errors = threading.Event(), [], []
        threads = [threading.Thread(target=sell, args=(db, stop, sold, errors)) for _ in range(4)]
        for thread in threads:
            thread.start()
        try:
            run_id = kill_after(db, point, where)
            resumed = cli("apply", "--resume", str(run_id), "--config", config)
            assert resumed.exit_code == 0, (where, point, resumed.output)
        finally:
            stop.set()
            for thread in threads:
                thread.join()
        assert not errors, errors[0]
        assert remaining(db) == truth(db), (where, point)
        assert db.rows(f"SELECT updated, status FROM trueup_runs WHERE id = {run_id}") == [(COUNT, "verified")]
