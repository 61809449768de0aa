"""`trueup init --database`: a starter that names only real columns, guessed from a Django-shaped schema."""

from __future__ import annotations

import json
import tomllib
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
from typer.testing import CliRunner

from tests.databases import Database
from trueup.cli import app
from trueup.config import load_config

runner = CliRunner()
metadata = sa.MetaData()
ID = lambda: sa.Column("id", sa.Integer, primary_key=True)  # noqa: E731
sa.Table(
    "django_content_type", metadata, ID(), sa.Column("app_label", sa.String(100)), sa.Column("model", sa.String(100))
)
sa.Table("django_migrations", metadata, ID(), sa.Column("app", sa.String(255)), sa.Column("applied", sa.DateTime))
sa.Table(
    "django_session", metadata, sa.Column("session_key", sa.String(40), primary_key=True),
    sa.Column("session_data", sa.Text), sa.Column("expire_date", sa.DateTime),
)  # fmt: skip
sa.Table("auth_group", metadata, ID(), sa.Column("name", sa.String(150)))
sa.Table(
    "auth_permission", metadata, ID(), sa.Column("name", sa.String(255)), sa.Column("codename", sa.String(100)),
    sa.Column("content_type_id", sa.Integer, sa.ForeignKey("django_content_type.id")),
)  # fmt: skip
sa.Table(
    "auth_group_permissions", metadata, ID(),
    sa.Column("group_id", sa.Integer, sa.ForeignKey("auth_group.id")),
    sa.Column("permission_id", sa.Integer, sa.ForeignKey("auth_permission.id")),
)  # fmt: skip
sa.Table(
    "auth_user", metadata, ID(), sa.Column("username", sa.String(150)), sa.Column("is_staff", sa.Boolean),
    sa.Column("last_login", sa.DateTime),
)  # fmt: skip
sa.Table(
    "django_admin_log", metadata, ID(), sa.Column("action_flag", sa.SmallInteger), sa.Column("object_id", sa.Text),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("auth_user.id")),
    sa.Column("content_type_id", sa.Integer, sa.ForeignKey("django_content_type.id")),
)  # fmt: skip
product = sa.Table(
    "inventory_product", metadata, ID(), sa.Column("sku", sa.String(32)), sa.Column("price", sa.Numeric(10, 2)),
    sa.Column("stock", sa.Integer, nullable=False),
)  # fmt: skip
order = sa.Table("inventory_order", metadata, ID(), sa.Column("status", sa.String(16)))
move = sa.Table(
    "inventory_stockmove", metadata, ID(),
    sa.Column("product_id", sa.Integer, sa.ForeignKey("inventory_product.id"), nullable=False),
    sa.Column("quantity", sa.Integer, nullable=False), sa.Column("created_at", sa.DateTime, nullable=False),
)  # fmt: skip
line = sa.Table(
    "inventory_saleline", metadata, ID(),
    sa.Column("product_id", sa.Integer, sa.ForeignKey("inventory_product.id"), nullable=False),
    sa.Column("order_id", sa.Integer, sa.ForeignKey("inventory_order.id"), nullable=False),
    sa.Column("qty", sa.Integer, nullable=False),
)  # fmt: skip
sa.Table(
    "inventory_barcode", metadata, ID(), sa.Column("code", sa.String(32)),
    sa.Column("product_id", sa.Integer, sa.ForeignKey("inventory_product.id")),
)  # fmt: skip


def django_shop(db: Database) -> None:
    db.create(metadata)
    db.insert(
        product, [{"id": 1, "sku": "A", "price": "2.50", "stock": 7}, {"id": 2, "sku": "B", "price": 1, "stock": 3}]
    )
    db.insert(order, [{"id": 1, "status": "PAID"}])
    db.insert(move, [{"id": 1, "product_id": 1, "quantity": 10, "created_at": datetime(2025, 1, 1)}])
    db.insert(line, [{"id": 1, "product_id": 1, "order_id": 1, "qty": 3}])


def test_init_guesses_rules_that_name_only_real_columns(db: Database, tmp_path: Path) -> None:
    django_shop(db)
    target = tmp_path / "trueup.toml"
    made = runner.invoke(app, ["init", "--database", db.url, "--config", str(target)])
    assert made.exit_code == 0, made.output
    assert (
        "Guessed 1 rule(s) from the schema (inventory_product.stock from inventory_barcode, inventory_saleline, "
        "inventory_stockmove). Check each source's sign and where before trusting the drift." in made.stderr
    )
    text = target.read_text()
    assert "# GUESSED from the schema" in text
    [rule] = tomllib.loads(text)["rules"]
    assert rule["name"] == "inventory_product_stock"
    assert rule["recorded"] == {"table": "inventory_product", "key": ["id"], "quantity": "stock"}
    assert [(s["table"], s["key"], s["quantity"], s["sign"]) for s in rule["expected"]] == [
        ("inventory_barcode", ["product_id"], 1, 1),  # no figure of its own: one per record
        ("inventory_saleline", ["product_id"], "qty", 1),
        ("inventory_stockmove", ["product_id"], "quantity", 1),
    ]
    assert '# unit_value = "price"' in text and '# time = "created_at"' in text
    assert "Named like cached figures" not in text  # the sources' own figures are not offered as rules
    assert "auth_group_permissions" not in text.split("# Tables in this database")[0]  # no rule for Django's own tables

    config = load_config(target)  # the file loads, and check runs against it
    assert [r.name for r in config.rules] == ["inventory_product_stock"]
    checked = runner.invoke(app, ["check", "-c", str(target), "-f", "json"])
    assert checked.exit_code == 1, checked.output
    [result] = json.loads(checked.stdout)["rules"]
    drift = {tuple(d["key"]): d["delta"] for d in result["drift"]}
    assert drift == {(1,): 3 + 10 - 7, (2,): -3}  # signs are all guessed +1: the user fixes them


def test_init_on_a_database_without_figures_says_so_and_writes_a_config_that_loads(
    sqlite_db: Database, tmp_path: Path
) -> None:
    sqlite_db.execute("CREATE TABLE auth_group (id integer primary key, name varchar(150))")
    target = tmp_path / "trueup.toml"
    made = runner.invoke(app, ["init", "--database", sqlite_db.url, "--config", str(target)])
    assert made.exit_code == 0, made.output
    assert "Guessed no rule: no table references a column named like a cached figure." in made.stderr
    sqlite_db.execute("CREATE TABLE stock (id integer primary key, on_hand integer, label varchar(9))")
    again = runner.invoke(app, ["init", "--database", sqlite_db.url, "--config", str(target), "--force"])
    assert "(stock.on_hand look like cached figures: see the file)" in again.stderr
    assert "#   stock.on_hand\n" in target.read_text()
    assert load_config(target).rules == []
    assert runner.invoke(app, ["check", "-c", str(target)]).exit_code == 0
