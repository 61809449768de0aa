"""A rule where more than half the items drift gets a warning naming the likeliest config mistake,
tested against the data (a swapped key, a reversed sign, a missing `where`), in check, plan and apply."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.databases import Database
from trueup.cli import app

runner = CliRunner()

RULE = """
[[rules]]
name = "shelf"
[rules.recorded]
table = "shelf"
key = ["store", "product"]
quantity = "qty"
[[rules.expected]]
table = "receipts"
key = {receipt_key}
quantity = "qty"
{receipt_where}
[[rules.expected]]
table = "sales"
key = ["store", "product"]
quantity = "qty"
sign = {sales_sign}
"""


def load(db: Database) -> None:
    """2 stores x 6 products: received 10·store + product, sold product, shelf holds the difference.

    Store 1 product 2, say: received 12, sold 2, shelf 10. Every item adds up as configured right.
    Besides, each item has one cancelled receipt of 5, which a `where` must leave out.
    """
    db.execute("CREATE TABLE shelf (store INTEGER, product INTEGER, qty INTEGER)")
    db.execute("CREATE TABLE receipts (store INTEGER, product INTEGER, status VARCHAR(10), qty INTEGER)")
    db.execute("CREATE TABLE sales (store INTEGER, product INTEGER, qty INTEGER)")
    for store in (1, 2):
        for product in range(3, 9):
            params = {"s": store, "p": product, "r": 10 * store + product}
            db.execute("INSERT INTO shelf VALUES (:s, :p, :r - :p)", params)
            db.execute("INSERT INTO receipts VALUES (:s, :p, 'DONE', :r), (:s, :p, 'CANCELLED', 5)", params)
            db.execute("INSERT INTO sales VALUES (:s, :p, :p)", params)


def config(db: Database, tmp_path: Path, *, key: str = '["store", "product"]', where: bool = True, sign: int = -1):
    path = tmp_path / "trueup.toml"
    receipt_where = "where = \"status = 'DONE'\"" if where else ""
    rule = RULE.format(receipt_key=key, receipt_where=receipt_where, sales_sign=sign)
    path.write_text(f'[database]\nurl = "{db.url}"\n{rule}')
    return path


def warning(document: dict) -> str | None:
    found = [f for f in document["rules"][0]["findings"] if f["kind"] == "mostly_drifted"]
    assert all(f["severity"] == "warning" for f in found)
    return found[0]["message"] if found else None


@pytest.mark.parametrize(
    ("mistake", "message"),
    [
        (
            {"key": '["product", "store"]'},
            "12 of 12 items drifted, more than half: usually a config mistake; expected[0] (receipts): its key "
            "columns look out of order; with key = ['store', 'product'], 12 of 12 items would agree",
        ),
        (
            {"sign": 1},
            "12 of 12 items drifted, more than half: usually a config mistake; expected[1] (sales): its sign looks "
            "reversed; with sign = -1, 12 of 12 items would agree",
        ),
        (
            {"where": False},
            "12 of 12 items drifted, more than half: usually a config mistake; expected is above the recorded "
            "figure on 12 of them: a source that adds may count records it should not (a missing `where`, e.g. "
            "on a status), or one that takes away is missing",
        ),
    ],
)
def test_check_names_the_config_mistake(db: Database, tmp_path: Path, mistake: dict, message: str) -> None:
    load(db)
    assert runner.invoke(app, ["check", "-c", str(config(db, tmp_path)), "-f", "json"]).exit_code == 0
    checked = runner.invoke(app, ["check", "-c", str(config(db, tmp_path, **mistake)), "-f", "json"])
    assert checked.exit_code == 1
    assert warning(json.loads(checked.stdout)) == message


def test_plan_and_apply_warn_too_but_a_scoped_run_does_not(db: Database, tmp_path: Path) -> None:
    load(db)
    path = config(db, tmp_path, sign=1)
    planned = runner.invoke(app, ["plan", "-c", str(path), "-f", "json"])
    assert "its sign looks reversed; with sign = -1" in warning(json.loads(planned.stdout))
    assert "mostly_drifted" in runner.invoke(app, ["plan", "-c", str(path)]).stdout
    scoped = runner.invoke(app, ["plan", "-c", str(path), "--key", "1,3", "-f", "json"])
    assert warning(json.loads(scoped.stdout)) is None

    applied = runner.invoke(app, ["apply", "-c", str(path), "--no-backup", "-f", "json"])
    document = json.loads(applied.stdout)
    assert document["changed"] == 12
    assert [w for w in document["warnings"] if "sign looks reversed" in w] == [
        "rule 'shelf': 12 of 12 items drifted, more than half: usually a config mistake; expected[1] (sales): "
        "its sign looks reversed; with sign = -1, 12 of 12 items would agree"
    ]
    assert "its sign looks reversed" in applied.stderr


def test_a_healthy_rule_with_a_few_drifted_items_gets_no_warning(sqlite_db: Database, tmp_path: Path) -> None:
    load(sqlite_db)
    sqlite_db.execute("UPDATE shelf SET qty = qty + 1 WHERE product < 5")  # 4 of 12 drift
    checked = runner.invoke(app, ["check", "-c", str(config(sqlite_db, tmp_path)), "-f", "json"])
    document = json.loads(checked.stdout)
    assert (document["rules"][0]["drifted"], warning(document)) == (4, None)
