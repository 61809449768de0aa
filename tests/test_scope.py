"""Repairs never write outside the scope asked for, nor what trueup itself flags as wrong (issue 10).

Each scenario is the one reported, with its figures worked out by hand, on SQLite, PostgreSQL
and MariaDB: a rule's `where` holding an OR, `--key` and `--where` scopes, missing rows on a
table without a primary key, and undo of the rows a run inserted.
"""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

import trueup
from tests.databases import Database
from tests.shapes import dump
from trueup.cli import app

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args))


def write_config(db: Database, tmp_path: Path, rule: str) -> Path:
    config = tmp_path / "trueup.toml"
    config.write_text(f'[database]\nurl = "{db.url}"\n\n{rule}')
    return config


# -- a recorded `where` with OR ----------------------------------------------------------------

ITEMS_RULE = """
[[rules]]
name = "items"
[rules.recorded]
table = "items"
key = ["id"]
quantity = "qty"
where = "status = 'ACTIVE' OR status = 'PENDING'"
[[rules.expected]]
table = "uses"
key = ["item_id"]
quantity = "qty"
"""


def load_items(db: Database) -> None:
    """20 items, each recorded 100, whose truth is its id: every ACTIVE and PENDING item drifts."""
    db.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, status VARCHAR(10), qty INTEGER)")
    db.execute("CREATE TABLE uses (item_id INTEGER, qty INTEGER)")
    status = {0: "ACTIVE", 1: "PENDING", 2: "CLOSED"}
    for n in range(1, 21):
        db.execute("INSERT INTO items VALUES (:n, :s, 100)", {"n": n, "s": status[n % 3]})
        db.execute("INSERT INTO uses VALUES (:n, :n)", {"n": n})


def test_a_recorded_where_with_or_keeps_apply_to_the_key_asked_for(db: Database, tmp_path: Path) -> None:
    load_items(db)
    config = write_config(db, tmp_path, ITEMS_RULE)
    before = dump(db, "items")

    planned = json.loads(run("plan", "-c", str(config), "--key", "4", "-f", "json").stdout)
    assert [(c["key"], c["recorded"], c["expected"]) for c in planned["rules"][0]["corrections"]] == [([4], 100, 4)]
    applied = run("apply", "-c", str(config), "--key", "4", "--no-backup", "-f", "json")
    assert applied.exit_code == 0, applied.output
    assert json.loads(applied.stdout)["changed"] == 1
    assert dump(db, "items") == [(4, "PENDING", 4) if row[0] == 4 else row for row in before]


def test_a_where_scope_with_or_stays_inside_the_rules_where(db: Database, tmp_path: Path) -> None:
    load_items(db)
    config = write_config(db, tmp_path, ITEMS_RULE)
    before = dump(db, "items")

    # (id = 3 OR id = 4) within (ACTIVE or PENDING): items 3 and 4, not every CLOSED one too
    applied = run("apply", "-c", str(config), "--where", "id = 3 OR id = 4", "--no-backup", "-f", "json")
    assert applied.exit_code == 0, applied.output
    assert json.loads(applied.stdout)["changed"] == 2
    assert dump(db, "items") == [(row[0], row[1], row[0]) if row[0] in (3, 4) else row for row in before]


# -- a source `where` with OR, insert_missing, no primary key ----------------------------------

STOCK_RULE = """
[[rules]]
name = "stock"
[rules.recorded]
table = "stock"
key = ["item_id"]
quantity = "qty"
insert_missing = true
{recorded_where}
[[rules.expected]]
table = "moves"
key = ["item_id"]
quantity = "qty"
where = "kind = 'in' OR kind = 'adjust'"
"""


def load_stock(db: Database, *, primary_key: bool = False) -> None:
    """20 stock rows (no primary key) recorded 10; moves: 10 in and 3 out each, item 5 adjusted +1.

    Truth (in + adjust): 10 for every item, 11 for item 5: only item 5 drifts (+1).
    """
    if primary_key:
        db.execute("CREATE TABLE stock (id INTEGER PRIMARY KEY, item_id INTEGER, qty INTEGER)")
    else:
        db.execute("CREATE TABLE stock (item_id INTEGER, qty INTEGER)")
    db.execute("CREATE TABLE moves (item_id INTEGER, kind VARCHAR(10), qty INTEGER)")
    for n in range(1, 21):
        db.execute(
            "INSERT INTO stock VALUES (:n, :n, 10)" if primary_key else "INSERT INTO stock VALUES (:n, 10)", {"n": n}
        )
        db.execute(
            "INSERT INTO moves VALUES (:n, 'in', 10), (:n, 'out', 3), (:n, 'adjust', :a)", {"n": n, "a": int(n == 5)}
        )


def stock_config(db: Database, tmp_path: Path, recorded_where: str = "") -> Path:
    return write_config(db, tmp_path, STOCK_RULE.format(recorded_where=recorded_where))


def test_a_source_where_with_or_plans_applies_and_undoes_one_key(db: Database, tmp_path: Path) -> None:
    load_stock(db)
    config = stock_config(db, tmp_path)
    before = dump(db, "stock")

    planned = json.loads(run("plan", "-c", str(config), "--key", "5", "-f", "json").stdout)
    assert planned["rules"][0]["corrections"] == [{"key": [5], "recorded": 10, "expected": 11, "delta": 1}]
    applied = run("apply", "-c", str(config), "--key", "5", "--no-backup", "-f", "json")
    assert applied.exit_code == 0, applied.output
    document = json.loads(applied.stdout)
    assert (document["updated"], document["inserted"]) == (1, 0)
    assert dump(db, "stock") == [(5, 11) if row[0] == 5 else row for row in before]
    assert run("check", "-c", str(config)).exit_code == 0

    undone = run("undo", str(document["run_id"]), "-c", str(config), "-f", "json")
    assert undone.exit_code == 0, undone.output
    assert dump(db, "stock") == before


def test_apply_never_inserts_a_key_the_table_already_holds(db: Database, tmp_path: Path) -> None:
    """Item 7's row is outside the recorded `where`, so the rule sees no row: it must not get a second one."""
    load_stock(db)
    db.execute("UPDATE stock SET qty = 0 WHERE item_id = 7")
    config = stock_config(db, tmp_path, 'where = "qty > 0"')
    before = dump(db, "stock")

    applied = run("apply", "-c", str(config), "--key", "7", "--no-backup", "-f", "json")
    assert applied.exit_code == 1, applied.output
    document = json.loads(applied.stdout)
    assert document["changed"] == 0
    assert document["conflicts"] == [
        {
            "rule": "stock",
            "key": [7],
            "reason": "not inserted: stock already holds a row with this key (outside the rule's where)",
        }
    ]
    assert dump(db, "stock") == before


def test_apply_never_updates_a_key_whose_table_holds_a_row_outside_the_where(db: Database, tmp_path: Path) -> None:
    """Item 5 drifts (+1); a second row for item 5 lies outside the recorded `where` (qty 0). An UPDATE by
    key would rewrite both rows, so the key is refused and listed, and nothing is written (it used to fail
    the whole apply with "expected to update 1 rows but updated 2")."""
    load_stock(db)
    db.execute("INSERT INTO stock VALUES (5, 0)")
    config = stock_config(db, tmp_path, 'where = "qty > 0"')
    before = dump(db, "stock")

    applied = run("apply", "-c", str(config), "--no-backup", "-f", "json")
    assert applied.exit_code == 1, applied.output
    document = json.loads(applied.stdout)
    assert document["changed"] == 0
    assert document["conflicts"] == [
        {
            "rule": "stock",
            "key": [5],
            "reason": "not updated: stock also holds a row with this key outside the rule's where, "
            "which a write by key would change too; add the column that tells them apart to the key",
        }
    ]
    assert dump(db, "stock") == before


def test_undo_leaves_alone_an_inserted_key_that_now_has_two_rows(db: Database, tmp_path: Path) -> None:
    """Item 21 has moves but no row: the run inserts it; someone then adds another row for 21."""
    load_stock(db)
    db.execute("INSERT INTO moves VALUES (21, 'in', 4)")
    config = stock_config(db, tmp_path)
    applied = json.loads(run("apply", "-c", str(config), "--key", "21", "--no-backup", "-f", "json").stdout)
    assert (applied["inserted"], applied["updated"]) == (1, 0)
    db.execute("INSERT INTO stock VALUES (21, 4)")  # indistinguishable from the run's row
    after = dump(db, "stock")

    refused = run("undo", str(applied["run_id"]), "-c", str(config))
    assert refused.exit_code == 1
    assert "[21]: 2 rows hold this key now; which one the run inserted cannot be told" in refused.stderr
    forced = run("undo", str(applied["run_id"]), "-c", str(config), "--force")
    assert forced.exit_code == 1
    assert (
        f"nothing to undo: every row of run {applied['run_id']} was changed since (stock [21]: 2 rows" in forced.stderr
    )
    assert dump(db, "stock") == after


def test_undo_deletes_only_the_row_the_run_inserted(db: Database, tmp_path: Path) -> None:
    """With a primary key, a row put in the place of the inserted one (same key, same figure) stays."""
    load_stock(db, primary_key=True)
    db.execute("INSERT INTO moves VALUES (21, 'in', 4)")
    config = stock_config(db, tmp_path, "insert_defaults = { id = 21 }")
    applied = json.loads(run("apply", "-c", str(config), "--no-backup", "-f", "json").stdout)
    assert (applied["updated"], applied["inserted"]) == (1, 1)  # item 5 corrected, item 21 inserted
    assert db.rows("SELECT id, item_id, qty FROM stock WHERE item_id IN (5, 21) ORDER BY id") == [
        (5, 5, 11),
        (21, 21, 4),
    ]
    db.execute("DELETE FROM stock WHERE id = 21")
    db.execute("INSERT INTO stock VALUES (99, 21, 4)")  # someone else's row, with the same key and figure

    forced = run("undo", str(applied["run_id"]), "-c", str(config), "--force", "-f", "json")
    assert forced.exit_code == 1, forced.output
    document = json.loads(forced.stdout)
    assert (document["restored"], document["deleted"]) == (1, 0)
    assert document["conflicts"] == [
        {
            "rule": "stock",
            "key": [21],
            "reason": "the row holding this key is not the one the run inserted (id differs): left alone",
        }
    ]
    assert db.rows("SELECT id, item_id, qty FROM stock WHERE item_id IN (5, 21) ORDER BY id") == [
        (5, 5, 10),
        (99, 21, 4),
    ]


def test_a_duplicate_key_fails_check(db: Database, tmp_path: Path) -> None:
    load_stock(db)
    db.execute("UPDATE stock SET qty = 11 WHERE item_id = 5")
    db.execute("INSERT INTO stock VALUES (3, 10)")
    config = stock_config(db, tmp_path)
    checked = run("check", "-c", str(config), "-f", "json")
    assert checked.exit_code == 1, checked.output
    [rule] = json.loads(checked.stdout)["rules"]
    assert rule["drifted"] == 0
    assert [(f["kind"], f["severity"], f["count"]) for f in rule["findings"]] == [("duplicate_key", "error", 1)]


# -- keys trueup flags as wrong are not written unless asked -----------------------------------

FLAGGED_RULE = """
[[rules]]
name = "inventory"
[rules.recorded]
table = "inventory"
key = ["id"]
quantity = "remaining"
[[rules.expected]]
table = "inventory"
key = ["id"]
quantity = "total"
[[rules.expected]]
table = "usage_log"
key = ["item_id"]
quantity = "used"
sign = -1
"""


def load_inventory(db: Database) -> None:
    """Item 1: 10 - 3 = 7, recorded 9 (delta -2). Item 2: 5 - 16 = -11 (negative expected), recorded 0.
    Item 3: 4 - 4 = 0, recorded 0 (adds up)."""
    db.execute("CREATE TABLE inventory (id INTEGER PRIMARY KEY, total INTEGER, remaining INTEGER)")
    db.execute("CREATE TABLE usage_log (item_id INTEGER, used INTEGER)")
    db.execute("INSERT INTO inventory VALUES (1, 10, 9), (2, 5, 0), (3, 4, 0)")
    db.execute("INSERT INTO usage_log VALUES (1, 3), (2, 10), (2, 6), (3, 4)")


def remaining(db: Database) -> dict[int, int]:
    return {int(k): int(v) for k, v in db.rows("SELECT id, remaining FROM inventory")}


LEFT_OUT = [{"key": [2], "recorded": 0, "expected": -11, "delta": -11, "findings": ["negative_expected"]}]


def test_plan_and_apply_leave_out_keys_with_a_negative_expected_figure(db: Database, tmp_path: Path) -> None:
    load_inventory(db)
    config = write_config(db, tmp_path, FLAGGED_RULE)

    planned = run("plan", "-c", str(config), "-f", "json")
    assert planned.exit_code == 1
    [rule] = json.loads(planned.stdout)["rules"]
    assert rule["corrections"] == [{"key": [1], "recorded": 9, "expected": 7, "delta": -2}]
    assert rule["left_out"] == LEFT_OUT
    assert [(f["kind"], f["severity"], f["count"]) for f in rule["findings"]] == [("negative_expected", "error", 1)]
    shown = run("plan", "-c", str(config)).stdout
    assert "inventory: 1 key(s) left out for an error finding" in shown
    assert "--include-flagged writes them" in shown
    assert "negative_expected" in shown

    applied = run("apply", "-c", str(config), "--no-backup", "-f", "json")
    assert applied.exit_code == 1, applied.output
    document = json.loads(applied.stdout)
    assert (document["changed"], document["rules"][0]["left_out"]) == (1, LEFT_OUT)
    assert remaining(db) == {1: 7, 2: 0, 3: 0}
    again = run("apply", "-c", str(config), "--no-backup")
    assert again.exit_code == 1
    assert "Nothing to apply but the keys left out below." in again.stdout

    forced = run("apply", "-c", str(config), "--no-backup", "--include-flagged", "-f", "json")
    assert forced.exit_code == 0, forced.output
    assert json.loads(forced.stdout)["changed"] == 1
    assert remaining(db) == {1: 7, 2: -11, 3: 0}


def test_reapplying_a_saved_plan_says_it_was_applied(db: Database, tmp_path: Path) -> None:
    load_inventory(db)
    config = write_config(db, tmp_path, FLAGGED_RULE)
    plan_file = tmp_path / "plan.json"
    run("plan", "-c", str(config), "--out", str(plan_file))
    first = json.loads(run("apply", "-c", str(config), "--plan", str(plan_file), "--no-backup", "-f", "json").stdout)

    again = run("apply", "-c", str(config), "--plan", str(plan_file), "--no-backup")
    assert again.exit_code == 0, again.output
    assert f"Already applied as run {first['run_id']}; nothing written." in again.stdout
    assert "Refused" not in again.stdout
    document = json.loads(run("apply", "-c", str(config), "--plan", str(plan_file), "-f", "json").stdout)
    assert (document["status"], document["applied_as"], document["changed"]) == (
        "already applied",
        first["run_id"],
        0,
    )

    run("undo", str(first["run_id"]), "-c", str(config))  # undone, the plan can be applied again
    redone = run("apply", "-c", str(config), "--plan", str(plan_file), "--no-backup", "-f", "json")
    assert redone.exit_code == 0, redone.output
    assert json.loads(redone.stdout)["changed"] == 1


def test_nothing_to_do_names_the_rule(sqlite_db: Database, tmp_path: Path) -> None:
    load_inventory(sqlite_db)
    sqlite_db.execute("UPDATE inventory SET remaining = 7 WHERE id = 1")
    sqlite_db.execute("DELETE FROM usage_log WHERE item_id = 2")
    sqlite_db.execute("UPDATE inventory SET remaining = 5 WHERE id = 2")
    config = write_config(sqlite_db, tmp_path, FLAGGED_RULE)
    applied = run("apply", "-c", str(config), "--rule", "inventory", "--no-backup")
    assert (applied.exit_code, applied.stdout.strip()) == (0, "Nothing to apply: inventory adds up.")
    planned = run("plan", "-c", str(config), "--rule", "inventory")
    assert planned.exit_code == 0
    assert planned.stdout.strip().endswith("Nothing to correct: inventory adds up.")


def test_a_sync_round_leaves_flagged_keys_out_and_says_so(db: Database, tmp_path: Path) -> None:
    load_inventory(db)
    config = write_config(db, tmp_path, FLAGGED_RULE)
    result = trueup.sync(str(config), rule="inventory", keys=[(2,)], apply=True, wait=5)
    assert (result.status, result.drifted, result.corrected) == ("refused", 1, 0)
    assert result.message == "1 key(s) left out for an error finding"
    assert result.unresolved
    assert remaining(db) == {1: 9, 2: 0, 3: 0}
