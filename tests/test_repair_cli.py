"""plan / apply / undo / runs / backup / restore from the command line: output, exit codes, database state."""

from __future__ import annotations

import json
import re
import socket
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from tests import shapes
from tests.databases import Database
from tests.shapes import dump
from trueup.cli import app
from trueup.reconcile import audit

runner = CliRunner()


def run(*args: str, env: dict[str, str] | None = None):
    return runner.invoke(app, list(args), env=env)


def batches_shop(db: Database, tmp_path: Path) -> Path:
    """Batches with B-2 recorded 5 (truth 3), plus C-3 recorded 1 (truth 0) so a plan has two keys."""
    shapes.load_batches(db)
    db.execute("UPDATE warehouse_inventory SET packs = 1 WHERE product_code = 'C-3'")
    config = tmp_path / "trueup.toml"
    config.write_text(f'[database]\nurl = "{db.url}"\n' + shapes.batches.CONFIG)
    return config


def packs(db: Database) -> dict[str, int]:
    return {code: int(n) for code, n in db.rows("SELECT product_code, packs FROM warehouse_inventory")}


def test_plan_json_and_apply_json_contract(db: Database, tmp_path: Path) -> None:
    config = batches_shop(db, tmp_path)
    planned = run("plan", "-c", str(config), "-f", "json")
    assert planned.exit_code == 1
    [rule] = json.loads(planned.stdout)["rules"]
    assert [(c["key"], c["recorded"], c["expected"], c["delta"]) for c in rule["corrections"]] == [
        (["B-2"], 5, 3, -2),
        (["C-3"], 1, 0, -1),
    ]

    applied = run("apply", "-c", str(config), "-f", "json", "--backup-dir", str(tmp_path / "b"))
    assert applied.exit_code == 0, applied.output
    document = json.loads(applied.stdout)
    assert (document["changed"], document["status"], document["conflicts"]) == (2, "verified", [])
    assert isinstance(document["run_id"], int)
    assert packs(db) == {"A-1": 10, "B-2": 3, "C-3": 0}

    runs = json.loads(run("runs", "-c", str(config), "-f", "json").stdout)["runs"]
    assert [(r["id"], r["kind"], r["changed"], r["triggered_by"]) for r in runs] == [
        (document["run_id"], "apply", 2, "cli")
    ]
    shown = json.loads(run("runs", "show", str(document["run_id"]), "-c", str(config), "-f", "json").stdout)
    assert sorted((c["key"], c["before"], c["after"]) for c in shown["changes"]) == [(["B-2"], 5, 3), (["C-3"], 1, 0)]


def test_saved_plan_refuses_keys_that_moved_and_applies_the_rest(db: Database, tmp_path: Path) -> None:
    config = batches_shop(db, tmp_path)
    plan_file = tmp_path / "plan.json"
    assert run("plan", "-c", str(config), "--out", str(plan_file)).exit_code == 1
    db.execute("UPDATE warehouse_inventory SET packs = 4 WHERE product_code = 'B-2'")  # a sale after the plan

    result = run("apply", "-c", str(config), "--plan", str(plan_file), "--no-backup", "-f", "json")
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert document["conflicts"] == [
        {"rule": "batches", "key": ["B-2"], "reason": "recorded changed from 5 to 4 since the plan"}
    ]
    assert document["changed"] == 1
    assert packs(db) == {"A-1": 10, "B-2": 4, "C-3": 0}  # B-2 left exactly as the sale left it


def test_saved_plan_refuses_when_the_truth_moved(sqlite_db: Database, tmp_path: Path) -> None:
    config = batches_shop(sqlite_db, tmp_path)
    plan_file = tmp_path / "plan.json"
    run("plan", "-c", str(config), "--out", str(plan_file))
    sqlite_db.execute("UPDATE batches SET quantity_remaining = 2 WHERE product_code = 'B-2'")
    sqlite_db.execute("UPDATE warehouse_inventory SET packs = 0 WHERE product_code = 'C-3'")  # fixed by hand

    result = run("apply", "-c", str(config), "--plan", str(plan_file), "--no-backup")
    assert result.exit_code == 1
    assert "expected changed from 3 to 2 since the plan" in result.stdout
    assert "no longer needs a correction" in result.stdout
    assert "Nothing was written." in result.stdout
    assert packs(sqlite_db) == {"A-1": 10, "B-2": 5, "C-3": 0}


def test_undo_after_a_later_change_refuses_and_changes_nothing(db: Database, tmp_path: Path) -> None:
    config = batches_shop(db, tmp_path)
    applied = json.loads(run("apply", "-c", str(config), "--no-backup", "-f", "json").stdout)
    db.execute("UPDATE warehouse_inventory SET packs = 2 WHERE product_code = 'B-2'")  # a later sale
    before = dump(db, "warehouse_inventory")

    refused = run("undo", str(applied["run_id"]), "-c", str(config))
    assert refused.exit_code == 1
    assert "refused: 1 row(s) changed since run" in refused.stderr
    assert "['B-2']: now holds 2, the run wrote 3" in refused.stderr
    assert dump(db, "warehouse_inventory") == before

    skipped = run("undo", str(applied["run_id"]), "-c", str(config), "--skip-conflicts", "-f", "json")
    assert skipped.exit_code == 1  # it ran, and left a conflict alone
    assert json.loads(skipped.stdout)["restored"] == 1
    assert packs(db) == {"A-1": 10, "B-2": 2, "C-3": 1}
    again = run("undo", str(applied["run_id"]), "-c", str(config))
    assert again.exit_code == 1 and "already undone by run" in again.stderr


def test_undo_force_overwrites_later_changes(sqlite_db: Database, tmp_path: Path) -> None:
    config = batches_shop(sqlite_db, tmp_path)
    original = dump(sqlite_db, "warehouse_inventory")
    applied = json.loads(run("apply", "-c", str(config), "--no-backup", "-f", "json").stdout)
    sqlite_db.execute("UPDATE warehouse_inventory SET packs = 2 WHERE product_code = 'B-2'")
    forced = run("undo", str(applied["run_id"]), "-c", str(config), "--force")
    assert forced.exit_code == 0, forced.output
    assert dump(sqlite_db, "warehouse_inventory") == original


def test_guard_rails_refuse_oversized_plans(sqlite_db: Database, tmp_path: Path) -> None:
    config = batches_shop(sqlite_db, tmp_path)
    too_many = run("apply", "-c", str(config), "--max-changes", "1")
    assert too_many.exit_code == 1
    assert "the plan changes 2 rows, more than --max-changes 1" in too_many.stderr
    too_big = run("apply", "-c", str(config), "--max-abs-delta", "1.5")
    assert too_big.exit_code == 1
    assert "would correct key ['B-2'] by -2, beyond --max-abs-delta 1.5" in too_big.stderr
    assert packs(sqlite_db)["B-2"] == 5
    assert run("apply", "-c", str(config), "--max-changes", "2", "--no-backup").exit_code == 0


def test_production_needs_yes_when_nobody_can_confirm(sqlite_db: Database, tmp_path: Path) -> None:
    config = batches_shop(sqlite_db, tmp_path)
    refused = run("apply", "-c", str(config), "--no-backup", env={"TRUEUP_ENV": "production"})
    assert refused.exit_code == 2
    assert "refusing to write without confirmation" in refused.stderr and "pass --yes" in refused.stderr
    assert packs(sqlite_db)["B-2"] == 5
    production_name = tmp_path / "shop-prod.db"
    production_name.write_bytes(Path(sqlite_db.url.removeprefix("sqlite:///")).read_bytes())
    by_name = run("apply", "-c", str(config), "-d", f"sqlite:///{production_name}", "--no-backup")
    assert by_name.exit_code == 2
    assert "matches the production pattern '(?<![a-z])(prod|production|live)(?![a-z])'" in by_name.stderr
    agreed = run("apply", "-c", str(config), "--no-backup", "--yes", env={"TRUEUP_ENV": "production"})
    assert agreed.exit_code == 0


@pytest.mark.parametrize("scope", [["--key", "C-3"], ["--where", "product_code = 'C-3'"]])
def test_scope_narrows_apply_to_one_item(db: Database, tmp_path: Path, scope: list[str]) -> None:
    config = batches_shop(db, tmp_path)
    result = run("apply", "-c", str(config), "--no-backup", *scope)
    assert result.exit_code == 0, result.output
    assert packs(db) == {"A-1": 10, "B-2": 5, "C-3": 0}


def test_composite_key_scope_and_arity_errors(sqlite_db: Database, tmp_path: Path) -> None:
    shapes.load_storefront(sqlite_db)
    config = tmp_path / "trueup.toml"
    config.write_text(f'[database]\nurl = "{sqlite_db.url}"\n' + shapes.storefront.CONFIG)
    planned = json.loads(run("plan", "-c", str(config), "--key", "2,11", "-f", "json").stdout)
    assert [c["key"] for c in planned["rules"][0]["corrections"]] == [[2, 11]]
    wrong = run("plan", "-c", str(config), "--key", "2")
    assert wrong.exit_code == 2
    assert "rule 'storefront' has a 2-column key (storefront_id,product_id); got 2" in wrong.stderr
    not_a_number = run("plan", "-c", str(config), "--key", "x,11")
    assert not_a_number.exit_code == 2 and "'x' is not a valid int" in not_a_number.stderr


def test_backup_list_verify_restore(db: Database, tmp_path: Path) -> None:
    config = batches_shop(db, tmp_path)
    backups = tmp_path / "backups"
    made = run("backup", "-c", str(config), "--backup-dir", str(backups))
    assert made.exit_code == 0, made.output
    assert "warehouse_inventory: 3 rows" in made.stdout
    [manifest] = backups.glob("*.manifest.json")
    original = dump(db, "warehouse_inventory")

    listed = run("backup", "list", "--backup-dir", str(backups), env={"COLUMNS": "200"})
    assert manifest.name.removesuffix(".manifest.json") in listed.stdout
    assert "warehouse_inventory (3)" in listed.stdout
    assert run("backup", "verify", str(manifest)).exit_code == 0

    db.execute("DELETE FROM warehouse_inventory WHERE product_code <> 'A-1'")
    db.execute("UPDATE warehouse_inventory SET packs = 99")
    db.execute("INSERT INTO warehouse_inventory (product_code, packs, pack_price) VALUES ('Z-9', 7, 1.25)")
    changed = dump(db, "warehouse_inventory")
    assert run("restore", str(manifest), "-c", str(config)).exit_code == 2  # needs --confirm
    before = tmp_path / "before"
    restored = run("restore", str(manifest), "-c", str(config), "--confirm", "--backup-dir", str(before))
    assert restored.exit_code == 0, restored.output
    assert dump(db, "warehouse_inventory") == original
    assert "warehouse_inventory (3 rows)" in restored.stdout and "as run 1" in restored.stdout
    [pre_restore] = before.glob("*.manifest.json")  # the tables as they were, backed up first
    assert f"backed up in {pre_restore.with_name(pre_restore.name.removesuffix('.manifest.json'))}" in (
        restored.stdout.replace("\n", "")
    )

    runs = json.loads(run("runs", "-c", str(config), "-f", "json").stdout)["runs"]
    assert [(r["kind"], r["rule"], r["status"], r["deleted"], r["inserted"], r["triggered_by"]) for r in runs] == [
        ("restore", "warehouse_inventory", "restored", 2, 3, "cli")
    ]
    undone = run("undo", "1", "-c", str(config))
    assert undone.exit_code == 0, undone.output
    assert dump(db, "warehouse_inventory") == changed  # exactly as before the restore
    runs = json.loads(run("runs", "-c", str(config), "-f", "json").stdout)["runs"]
    assert [(r["id"], r["kind"], r["undoes_run"], r["status"], r["undone_by"]) for r in runs] == [
        (2, "undo", 1, "restored", None),
        (1, "restore", None, "undone", 2),
    ]
    assert run("undo", "2", "-c", str(config)).exit_code == 0  # the undo is a restore too: undone in turn
    assert dump(db, "warehouse_inventory") == original


def test_undo_of_a_restore_that_created_a_table_drops_it(db: Database, tmp_path: Path) -> None:
    config = batches_shop(db, tmp_path)
    backups = tmp_path / "backups"
    assert run("backup", "-c", str(config), "--backup-dir", str(backups)).exit_code == 0
    [manifest] = backups.glob("*.manifest.json")
    original = dump(db, "warehouse_inventory")
    db.execute("DROP TABLE warehouse_inventory")
    restored = run("restore", str(manifest), "-c", str(config), "--confirm", "--backup-dir", str(backups))
    assert restored.exit_code == 0, restored.output
    assert dump(db, "warehouse_inventory") == original
    assert "backed up in" not in restored.stdout  # nothing to back up: the table did not exist
    assert run("undo", "1", "-c", str(config)).exit_code == 0
    assert "warehouse_inventory" not in sa.inspect(db.engine).get_table_names()


def test_a_damaged_backup_fails_verification(sqlite_db: Database, tmp_path: Path) -> None:
    config = batches_shop(sqlite_db, tmp_path)
    run("backup", "-c", str(config), "--backup-dir", str(tmp_path / "b"))
    [manifest] = (tmp_path / "b").glob("*.manifest.json")
    backup = manifest.with_name(manifest.name.removesuffix(".manifest.json"))
    backup.write_bytes(backup.read_bytes()[:-100])
    result = run("backup", "verify", str(backup))
    assert result.exit_code == 1
    assert "sha256 differs from the manifest" in result.stdout
    refused = run("restore", str(backup), "-c", str(config), "--confirm")
    assert refused.exit_code == 2 and "fails verification" in refused.stderr


def test_runs_say_by_whom_and_what_triggered_them(sqlite_db: Database, tmp_path: Path) -> None:
    config = batches_shop(sqlite_db, tmp_path)
    applied = run("apply", "-c", str(config), "--no-backup", "--triggered-by", "nightly-fix", "-f", "json")
    run_id = json.loads(applied.stdout)["run_id"]
    by = f"{audit._os_user()}@{socket.gethostname()}"
    [listed] = json.loads(run("runs", "-c", str(config), "-f", "json").stdout)["runs"]
    assert (listed["id"], listed["by"], listed["triggered_by"]) == (run_id, by, "nightly-fix")
    table = runner.invoke(app, ["runs", "-c", str(config)], env={"COLUMNS": "200"}).stdout
    assert re.search(r"run\s+kind\s+rules\s+started \(UTC\)\s+by\s+triggered by\s+changed\s+status", table)
    assert re.search(rf"{run_id}\s+apply\s+batches\s+\S+ \S+\s+{re.escape(by)}\s+nightly-fix\s+2\s", table)


@pytest.fixture
def other_schema(server_db: Database):
    """A second schema (PostgreSQL) or database (MariaDB) beside the test's own."""
    name = f"trueup_o_{uuid.uuid4().hex[:10]}"
    quoted = f'"{name}"' if server_db.kind == "postgresql" else f"`{name}`"
    server_db.execute(f"CREATE {'SCHEMA' if server_db.kind == 'postgresql' else 'DATABASE'} {quoted}")
    try:
        yield name
    finally:
        server_db.execute(
            f"DROP {'SCHEMA' if server_db.kind == 'postgresql' else 'DATABASE'} {quoted}"
            + (" CASCADE" if server_db.kind == "postgresql" else "")
        )


def test_backup_of_a_table_in_another_schema_is_that_table(
    server_db: Database, other_schema: str, tmp_path: Path
) -> None:
    """A same-named table in the connection's own schema is neither what is backed up nor what restore writes."""
    db = server_db
    config = batches_shop(db, tmp_path)
    quote = db.engine.dialect.identifier_preparer.quote
    qualified = f"{quote(other_schema)}.warehouse_inventory"
    db.execute(f"CREATE TABLE {qualified} (product_code VARCHAR(20) PRIMARY KEY, packs INTEGER)")
    db.execute(f"INSERT INTO {qualified} VALUES ('X-1', 40), ('X-2', 41)")
    own = dump(db, "warehouse_inventory")
    backups = tmp_path / "backups"
    made = run(
        "backup", "-c", str(config), "--table", f"{other_schema}.warehouse_inventory", "--backup-dir", str(backups)
    )
    assert made.exit_code == 0, made.output
    assert f"{other_schema}.warehouse_inventory: 2 rows" in made.stdout
    [manifest] = backups.glob("*.manifest.json")

    db.execute(f"DELETE FROM {qualified}")
    db.execute("UPDATE warehouse_inventory SET packs = 99")
    changed_own = dump(db, "warehouse_inventory")
    restored = run("restore", str(manifest), "-c", str(config), "--confirm", "--backup-dir", str(tmp_path / "pre"))
    assert restored.exit_code == 0, restored.output
    assert db.rows(f"SELECT product_code, packs FROM {qualified} ORDER BY 1") == [("X-1", 40), ("X-2", 41)]
    assert dump(db, "warehouse_inventory") == changed_own != own  # the own schema's table was not touched
