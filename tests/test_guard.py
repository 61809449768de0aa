"""trueup guard --mode capture: triggers from a rule queue exactly the touched keys, on every database."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from tests.databases import Database, make_database
from trueup.cli import app
from trueup.config import load_config
from trueup.guard import runs as guard_runs
from trueup.guard.ddl import Trigger

runner = CliRunner()
metadata = sa.MetaData()
items = sa.Table(
    "items",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("name", sa.String(40), nullable=False),
    sa.Column("total", sa.Integer, nullable=False),
    sa.Column("remaining", sa.Integer, nullable=False),
)
moves = sa.Table(
    "moves",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("item_id", sa.Integer, nullable=False),
    sa.Column("qty", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
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
table = "moves"
key = ["item_id"]
quantity = "qty"
sign = -1
where = "status = 'done'"
"""
JOINED = """
[[rules]]
name = "joined"
[rules.recorded]
table = "items"
key = ["id"]
quantity = "remaining"
[[rules.expected]]
from = "moves m JOIN items i ON i.id = m.item_id"
key = ["m.item_id"]
quantity = "m.qty"
"""


def shop(db: Database, tmp_path: Path, extra: str = "") -> Path:
    """Nine items of 100, every figure true: item 2 has a pending move, 4 and 5 a done one."""
    db.create(metadata)
    db.insert(items, [{"id": i, "name": f"item {i}", "total": 100, "remaining": 100} for i in range(1, 10)])
    db.insert(
        moves,
        [
            {"id": 2, "item_id": 2, "qty": 3, "status": "pending"},
            {"id": 4, "item_id": 4, "qty": 7, "status": "done"},
            {"id": 5, "item_id": 5, "qty": 2, "status": "done"},
        ],
    )
    db.execute("UPDATE items SET remaining = 93 WHERE id = 4")
    db.execute("UPDATE items SET remaining = 98 WHERE id = 5")
    path = tmp_path / "trueup.toml"
    path.write_text(f'[database]\nurl = "{db.url}"\n' + RULE + extra)
    return path


def cli(path: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, [*args, "--config", str(path)])
    return result.exit_code, result.output


def catalog(db: Database) -> list[str]:
    """Every trigger (and, on PostgreSQL, every function) in the test's namespace."""
    if db.kind == "sqlite":
        return [r[0] for r in db.rows("SELECT name FROM sqlite_master WHERE type = 'trigger' ORDER BY name")]
    if db.kind == "postgresql":
        return [
            *(r[0] for r in db.rows(
                "SELECT t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                "WHERE NOT t.tgisinternal AND c.relnamespace = current_schema()::regnamespace ORDER BY 1"
            )),
            *(r[0] for r in db.rows(
                "SELECT 'function ' || proname FROM pg_proc WHERE pronamespace = current_schema()::regnamespace "
                "ORDER BY 1"
            )),
        ]  # fmt: skip
    return [
        r[0]
        for r in db.rows(
            "SELECT trigger_name FROM information_schema.triggers WHERE trigger_schema = DATABASE() ORDER BY 1"
        )
    ]


def queued(db: Database) -> list[list[int]]:
    return sorted(
        json.loads(r[0])
        for r in db.rows("SELECT " + ('"key"' if db.kind != "mariadb" else "`key`") + " FROM trueup_dirty")
    )


def test_a_round_after_capture_checks_exactly_the_touched_keys(db: Database, tmp_path: Path) -> None:
    path = shop(db, tmp_path)
    code, out = cli(path, "guard", "install", "--rule", "stock", "--mode", "capture", "--yes")
    assert code == 0, out
    assert "installed: " in out
    code, out = cli(path, "watch", "--once", "--format", "json")
    assert code == 0, out
    assert json.loads(out)["kind"] == "full"

    db.execute("UPDATE items SET name = 'renamed' WHERE id = 1")  # a column the rule does not read
    assert queued(db) == []
    db.execute("INSERT INTO moves (id, item_id, qty, status) VALUES (1, 1, 5, 'done')")  # a correct sale
    db.execute("UPDATE items SET remaining = 95 WHERE id = 1")
    db.execute("UPDATE moves SET status = 'done' WHERE id = 2")  # a status flipped in place
    db.execute("UPDATE items SET remaining = 90 WHERE id = 3")  # a hand edit of the cached figure
    db.execute("DELETE FROM moves WHERE id = 4")  # a deleted record
    db.execute("UPDATE moves SET item_id = 6 WHERE id = 5")  # a record moved from item 5 to item 6
    assert sorted({tuple(k) for k in map(tuple, queued(db))}) == [(1,), (2,), (3,), (4,), (5,), (6,)]

    code, out = cli(path, "watch", "--once", "--format", "json")
    round_ = json.loads(out)
    assert code == 1, out
    assert (round_["kind"], round_["checked"], round_["drifted"]) == ("incremental", 6, 5)
    found = {tuple(d["key"]): (d["recorded"], d["expected"]) for d in round_["drift"]}
    assert found == {(2,): (100, 97), (3,): (90, 100), (4,): (93, 100), (5,): (98, 100), (6,): (100, 98)}


def test_install_twice_is_a_no_op_and_remove_leaves_the_catalog_as_it_was(db: Database, tmp_path: Path) -> None:
    path = shop(db, tmp_path)
    before = catalog(db)
    code, out = cli(path, "guard", "plan", "--rule", "stock", "--mode", "capture")
    assert code == 0, out
    assert out.count("CREATE TRIGGER") >= 6
    assert catalog(db) == before
    assert not sa.inspect(db.engine).has_table("trueup_runs")  # plan wrote nothing

    assert cli(path, "guard", "install", "--rule", "stock", "--yes")[0] == 0
    installed = catalog(db)
    assert len(installed) > len(before)
    code, out = cli(path, "guard", "install", "--rule", "stock", "--yes")
    assert (code, "nothing to do" in out) == (0, True), out
    assert catalog(db) == installed
    code, out = cli(path, "guard", "status")
    assert code == 0 and out.startswith("stock: capture on items, moves; run 1,"), out
    assert "rule changed since: no" in out

    code, out = cli(path, "guard", "remove", "--rule", "stock", "--yes")
    assert code == 0, out
    assert catalog(db) == before
    assert cli(path, "guard", "status")[1].strip() == "no guards installed"

    assert cli(path, "guard", "install", "--rule", "stock", "--yes")[0] == 0
    run_id = db.scalar("SELECT MAX(id) FROM trueup_runs WHERE kind = 'guard'")
    code, out = cli(path, "undo", str(run_id), "--yes")
    assert code == 0, out
    assert catalog(db) == before


def test_a_changed_rule_is_reported_and_replaced(db: Database, tmp_path: Path) -> None:
    path = shop(db, tmp_path)
    assert cli(path, "guard", "install", "--rule", "stock", "--yes")[0] == 0
    path.write_text(path.read_text().replace("where = \"status = 'done'\"\n", ""))
    assert "rule changed since: yes" in cli(path, "guard", "status")[1]
    code, out = cli(path, "guard", "install", "--rule", "stock", "--yes")
    assert code == 0 and "replacing run 1" in out, out
    db.execute("UPDATE moves SET status = 'x' WHERE id = 4")  # the rule no longer reads status
    assert queued(db) == []


def test_what_capture_cannot_guard_is_refused_in_one_line(db: Database, tmp_path: Path) -> None:
    path = shop(db, tmp_path, JOINED)
    code, out = cli(path, "guard", "install", "--rule", "joined", "--yes")
    assert code == 2
    refusal = (
        "rule 'joined': expected[0]: guard {} cannot map a changed row of 'items' to the key m.item_id: "
        "not every key expression is a column of 'i'; say how in [rules.expected.guard.items] "
        "(key, from, where, naming the row `row`)\n"
    )
    assert out.endswith(refusal.format("capture")), out
    code, out = cli(path, "guard", "install", "--rule", "joined", "--mode", "enforce", "--yes")
    assert code == 2
    if db.kind != "postgresql":
        assert "only --mode capture works" in out
    else:
        assert out.endswith(refusal.format("enforce")), out
    assert catalog(db) == []


def test_an_install_killed_halfway_leaves_nothing_half_installed(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = shop(db, tmp_path)
    real = guard_runs._create

    def killed(connection: sa.Connection, found: list[Trigger]) -> None:
        real(connection, found[:1])
        raise KeyboardInterrupt  # the process dies after its first trigger

    monkeypatch.setattr(guard_runs, "_create", killed)
    with pytest.raises(KeyboardInterrupt), db.engine.connect() as connection:
        guard_runs.install(connection, load_config(path), "stock", "capture", yes=True)
    monkeypatch.undo()
    code, out = cli(path, "guard", "status")
    assert code == 0, out
    if db.kind == "mariadb":  # DDL commits: the run was recorded first, and says it is incomplete
        assert "(incomplete: install again or remove)" in out, out
        assert len(catalog(db)) == 1
        assert cli(path, "guard", "remove", "--rule", "stock", "--yes")[0] == 0
    else:  # one transaction: rolled back whole
        assert out.strip() == "no guards installed"
    assert catalog(db) == []
    assert cli(path, "guard", "install", "--rule", "stock", "--yes")[0] == 0
    assert "rule changed since: no" in cli(path, "guard", "status")[1]


def test_production_needs_confirmation_and_a_removal_is_not_undone(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = shop(db, tmp_path)
    monkeypatch.setenv("TRUEUP_ENV", "production")
    code, out = cli(path, "guard", "install", "--rule", "stock")
    assert code == 2
    assert "refusing to write without confirmation: install guard capture on rule 'stock'" in out
    assert catalog(db) == []
    assert cli(path, "guard", "install", "--rule", "stock", "--yes")[0] == 0
    assert cli(path, "guard", "remove", "--rule", "stock")[0] == 2
    code, out = cli(path, "undo", "1", "--yes")
    assert (code, out.strip()) == (0, "Run 2 undid run 1: dropped its 6 guard trigger(s).")
    code, out = cli(path, "undo", "2", "--yes")
    assert code == 1
    assert "run 2 removed a guard; install it again with: trueup guard install --rule stock" in out
    assert catalog(db) == []


def test_an_application_role_that_may_not_write_the_queue_still_commits(tmp_path: Path) -> None:
    """PostgreSQL: the trigger functions run as their owner, so the app role needs no grant on trueup_dirty."""
    db, drop = make_database("postgresql", tmp_path)
    role = f"guard_app_{uuid.uuid4().hex[:8]}"
    try:
        path = shop(db, tmp_path)
        assert cli(path, "guard", "install", "--rule", "stock", "--yes")[0] == 0
        schema = db.scalar("SELECT current_schema()")
        db.execute(f'CREATE ROLE "{role}"')
        db.execute(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"; GRANT UPDATE, SELECT ON items TO "{role}"')
        db.execute(f'SET ROLE "{role}"; UPDATE items SET remaining = 1 WHERE id = 3; RESET ROLE')
        assert queued(db) == [[3]]
    finally:
        if db.scalar("SELECT 1 FROM pg_roles WHERE rolname = :r", {"r": role}):
            db.execute(f'DROP OWNED BY "{role}"; DROP ROLE "{role}"')
        drop()


DOLLAR = """
[[rules]]
name = "dollar"
[rules.recorded]
table = "items"
key = ["id"]
quantity = "remaining"
[[rules.expected]]
table = "moves"
key = ["item_id"]
quantity = "qty"
where = "status <> '$trueup$; DROP TABLE items; --'"
"""


def test_sql_holding_the_function_quote_is_refused_before_any_ddl(pg: Database, tmp_path: Path) -> None:
    """The PostgreSQL functions are quoted `$trueup$ … $trueup$`: a fragment holding it would end the body."""
    path = shop(pg, tmp_path, DOLLAR)
    before = catalog(pg)
    code, out = cli(path, "guard", "install", "--rule", "dollar", "--mode", "enforce", "--yes")
    assert code == 2, out
    assert "rule 'dollar': its SQL contains `$trueup$`" in out
    assert catalog(pg) == before and pg.scalar("SELECT COUNT(*) FROM items") == 9
