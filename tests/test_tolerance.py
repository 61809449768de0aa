"""A rule's `tolerance`: differences at or below it are counted, not drift, and never written."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa
from typer.testing import CliRunner

from tests.databases import Database
from trueup.cli import app

runner = CliRunner()

DECIMALS = """
[[rules]]
name = "stock"
tolerance = 0.001
[rules.recorded]
table = "stock"
key = ["sku"]
quantity = "qty"
[[rules.expected]]
table = "moves"
key = ["sku"]
quantity = "qty"
"""

FLOATS = """
[[rules]]
name = "weights"
{tolerance}
[rules.recorded]
table = "scale"
key = ["id"]
quantity = "kg"
[[rules.expected]]
table = "weighings"
key = ["id"]
quantity = "kg"
"""


def run(*args: str):
    return runner.invoke(app, list(args))


def decimal_shop(db: Database, tmp_path: Path, rules: str = DECIMALS) -> Path:
    """A: +0.001 and B: -0.001 (exactly the tolerance), C: +0.0011 and E: -0.0011 (just above), D clean."""
    metadata = sa.MetaData()
    stock = sa.Table(
        "stock", metadata, sa.Column("sku", sa.String(8), primary_key=True), sa.Column("qty", sa.Numeric(12, 4))
    )
    moves = sa.Table("moves", metadata, sa.Column("sku", sa.String(8)), sa.Column("qty", sa.Numeric(12, 4)))
    db.create(metadata)
    recorded = {"A": "10", "B": "10", "C": "10", "D": "5", "E": "3"}
    db.insert(stock, [{"sku": sku, "qty": Decimal(qty)} for sku, qty in recorded.items()])
    moved = [("A", "10.0010"), ("B", "9.9990"), ("C", "10.0011"), ("D", "2"), ("D", "3"), ("E", "2.9989")]
    db.insert(moves, [{"sku": sku, "qty": Decimal(qty)} for sku, qty in moved])
    config = tmp_path / "trueup.toml"
    config.write_text(f'[database]\nurl = "{db.url}"\n' + rules)
    return config


def float_shop(db: Database) -> None:
    """Weights kept in DOUBLE: 1 and 2 add up but for floating-point noise (0.1 + 0.2), 3 is really off."""
    metadata = sa.MetaData()
    scale = sa.Table("scale", metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("kg", sa.Double))
    weighings = sa.Table("weighings", metadata, sa.Column("id", sa.Integer), sa.Column("kg", sa.Double))
    db.create(metadata)
    db.insert(scale, [{"id": 1, "kg": 0.3}, {"id": 2, "kg": 0.3}, {"id": 3, "kg": 2.0}])
    parts = [(1, 0.1), (1, 0.2), (2, 0.1), (2, 0.1), (2, 0.1), (3, 2.5)]
    db.insert(weighings, [{"id": i, "kg": kg} for i, kg in parts])


def float_config(db: Database, tmp_path: Path, tolerance: str) -> Path:
    config = tmp_path / "trueup.toml"
    config.write_text(f'[database]\nurl = "{db.url}"\n' + FLOATS.format(tolerance=tolerance))
    return config


def stock(db: Database) -> dict[str, Decimal]:
    return {sku: Decimal(str(qty)) for sku, qty in db.rows("SELECT sku, qty FROM stock")}


def check_json(config: Path) -> tuple[int, dict]:
    result = run("check", "-c", str(config), "-f", "json")
    [rule] = json.loads(result.stdout, parse_float=Decimal)["rules"]
    return result.exit_code, rule


def test_a_difference_equal_to_the_tolerance_is_not_drift_and_just_above_it_is(db: Database, tmp_path: Path) -> None:
    config = decimal_shop(db, tmp_path)
    code, rule = check_json(config)
    assert code == 1
    assert sorted((d["key"], d["delta"]) for d in rule["drift"]) == [
        (["C"], Decimal("0.0011")),
        (["E"], Decimal("-0.0011")),
    ]
    assert (rule["drifted"], rule["within_tolerance"], rule["abs_drift"]) == (2, 2, Decimal("0.0022"))

    table = run("check", "-c", str(config))
    assert "5 items checked, 2 drifted, 0.0022 units off in total, 2 within tolerance." in table.stdout
    markdown = run("check", "-c", str(config), "-f", "markdown").stdout
    assert "2 within tolerance" in markdown
    html = run("check", "-c", str(config), "-f", "html").stdout
    assert "<b>2</b><span>within tolerance</span>" in html


def test_without_a_tolerance_the_same_differences_are_drift(db: Database, tmp_path: Path) -> None:
    config = decimal_shop(db, tmp_path, DECIMALS.replace("tolerance = 0.001\n", ""))
    code, rule = check_json(config)
    assert code == 1
    assert sorted(d["key"][0] for d in rule["drift"]) == ["A", "B", "C", "E"]
    assert rule["within_tolerance"] == 0


def test_plan_and_apply_never_write_what_is_within_tolerance(db: Database, tmp_path: Path) -> None:
    config = decimal_shop(db, tmp_path)
    planned = run("plan", "-c", str(config), "-f", "json")
    assert planned.exit_code == 1
    [rule] = json.loads(planned.stdout)["rules"]
    assert sorted(c["key"][0] for c in rule["corrections"]) == ["C", "E"]

    applied = run("apply", "-c", str(config), "-f", "json", "--no-backup")
    assert applied.exit_code == 0, applied.output
    assert json.loads(applied.stdout)["changed"] == 2
    assert stock(db) == {"A": 10, "B": 10, "C": Decimal("10.0011"), "D": 5, "E": Decimal("2.9989")}

    code, rule = check_json(config)
    assert (code, rule["drifted"], rule["within_tolerance"]) == (0, 0, 2)


def test_sync_leaves_keys_within_tolerance_alone(db: Database, tmp_path: Path) -> None:
    config = decimal_shop(db, tmp_path)
    result = run(
        "sync", "-c", str(config), "--rule", "stock", "--key", "A", "--key", "C", "--apply", "--format", "json"
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert (document["checked"], document["drifted"], document["corrected"]) == (2, 1, 1)
    assert stock(db) == {"A": 10, "B": 10, "C": Decimal("10.0011"), "D": 5, "E": 3}  # only C was outside


def test_floating_point_noise_is_clean_with_a_tolerance(db: Database, tmp_path: Path) -> None:
    float_shop(db)
    code, rule = check_json(float_config(db, tmp_path, ""))
    assert (code, sorted(d["key"][0] for d in rule["drift"])) == (1, [1, 2, 3])  # the noise is real

    code, rule = check_json(float_config(db, tmp_path, "tolerance = 1e-9"))
    assert (code, [(d["key"], d["delta"]) for d in rule["drift"]]) == (1, [([3], Decimal("0.5"))])
    assert rule["within_tolerance"] == 2


def test_a_negative_tolerance_is_refused(sqlite_db: Database, tmp_path: Path) -> None:
    config = decimal_shop(sqlite_db, tmp_path, DECIMALS.replace("0.001", "-0.5"))
    result = run("check", "-c", str(config))
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"error: {config}: rule 'stock': tolerance: Input should be greater than or equal to 0"
    )
