"""`trueup check`, `demo` and `init` as users run them: output, files and exit codes."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.databases import Database
from trueup.cli import app
from trueup.cli.app import command_paths
from trueup.examples import batches

runner = CliRunner()
PAST = datetime(2025, 3, 1)


def run(*args: str):
    return runner.invoke(app, list(args))


def shop(db: Database, tmp_path: Path, extra: str = "", config_text: str | None = None) -> Path:
    """The batches shape: A-1 correct, B-2 off by -2, C-3 off by +4, D-4 only in batches."""
    db.create(batches.metadata)
    db.insert(
        batches.warehouse_inventory,
        [
            {"product_code": "A-1", "packs": 10, "pack_price": "2.50"},
            {"product_code": "B-2", "packs": 5, "pack_price": "1.00"},
            {"product_code": "C-3", "packs": 0, "pack_price": "3.00"},
        ],
    )
    batch = lambda i, code, qty: {"id": i, "product_code": code, "quantity_remaining": qty, "received_at": PAST}  # noqa: E731
    db.insert(batches.batches, [batch(1, "A-1", 10), batch(2, "B-2", 3), batch(3, "C-3", 4), batch(4, "D-4", 8)])
    path = tmp_path / "trueup.toml"
    path.write_text(f'[database]\nurl = "{db.url}"\n' + (config_text or batches.CONFIG) + extra)
    return path


def test_check_json_contract(db: Database, tmp_path: Path) -> None:
    config = shop(db, tmp_path)
    result = run("check", "--config", str(config), "--format", "json")
    assert result.exit_code == 1, result.output
    document = json.loads(result.stdout)
    [rule] = document["rules"]
    assert rule["drift"] == [
        {"key": ["C-3"], "recorded": 0, "expected": 4, "delta": 4, "value": 12},
        {"key": ["B-2"], "recorded": 5, "expected": 3, "delta": -2, "value": -2},
    ]
    assert {k: rule[k] for k in ("name", "items", "drifted", "abs_drift", "value_impact")} == {
        "name": "batches",
        "items": 4,
        "drifted": 2,
        "abs_drift": 6,
        "value_impact": 10,
    }
    [finding] = rule["findings"]
    assert (finding["kind"], finding["severity"], finding["count"]) == ("missing_row", "warning", 1)
    assert finding["sample"][0]["key"] == ["D-4"]
    assert document["checks"] == []


def test_limit_keeps_the_worst_but_counts_all(sqlite_db: Database, tmp_path: Path) -> None:
    result = run("check", "-c", str(shop(sqlite_db, tmp_path)), "-f", "json", "--limit", "1")
    rule = json.loads(result.stdout)["rules"][0]
    assert [d["key"] for d in rule["drift"]] == [["C-3"]]
    assert rule["drifted"] == 2


def test_clean_database_exits_0(sqlite_db: Database, tmp_path: Path) -> None:
    config = shop(sqlite_db, tmp_path)
    sqlite_db.execute("UPDATE warehouse_inventory SET packs = 3 WHERE product_code = 'B-2'")
    sqlite_db.execute("UPDATE warehouse_inventory SET packs = 4 WHERE product_code = 'C-3'")
    result = run("check", "-c", str(config))
    assert result.exit_code == 0, result.output
    assert "All 1 rule(s) add up." in result.stdout
    assert "missing_row" in result.stdout  # findings are reported, but do not fail the run


@pytest.mark.parametrize(("severity", "code"), [("error", 1), ("warning", 0)])
def test_failing_checks_fail_the_run_only_at_error_severity(
    sqlite_db: Database, tmp_path: Path, severity: str, code: int
) -> None:
    check = f'\n[[checks]]\nname = "no empty stock"\nseverity = "{severity}"\nsql = "SELECT * FROM warehouse_inventory WHERE packs = 0"\n'  # noqa: E501
    config = shop(sqlite_db, tmp_path, extra=check)
    sqlite_db.execute("UPDATE warehouse_inventory SET packs = 3 WHERE product_code = 'B-2'")
    sqlite_db.execute("DELETE FROM batches WHERE product_code = 'C-3'")  # C-3: 0 packs, correctly
    result = run("check", "-c", str(config), "-f", "json")
    assert result.exit_code == code, result.output
    [check_result] = json.loads(result.stdout)["checks"]
    assert check_result["failing"] == 1
    assert check_result["sample"][0]["product_code"] == "C-3"


def test_output_file_and_table_report(sqlite_db: Database, tmp_path: Path) -> None:
    config = shop(sqlite_db, tmp_path)
    report = tmp_path / "drift.txt"
    result = run("check", "-c", str(config), "--output", str(report))
    assert result.exit_code == 1
    assert result.stdout == ""
    text = report.read_text()
    assert "1 of 1 rule(s) drifted (2 keys)." in text
    assert not list(tmp_path.glob("*.partial"))


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('quantity = "packs"', 'quantity = "pack"',
         "rule 'batches': recorded.quantity: no column 'pack' in table 'warehouse_inventory'; "
         "did you mean `packs`?"),
        ('quantity = "packs"', 'quantity = "sold"',
         "rule 'batches': recorded.quantity: no column 'sold' in table 'warehouse_inventory'; "
         "it has: pack_price, packs, product_code"),
        ('table = "batches"', 'table = "batchez"',
         "rule 'batches': expected[0].table: no table 'batchez' in the database; did you mean `batches`?"),
        ('time = "received_at"', 'time = "received_at"\nwhere = "no_such_column > 0"',
         "rule 'batches': expected[0]: the database rejected it:"),
    ],
)  # fmt: skip
def test_schema_mistakes_name_the_rule_and_column(
    db: Database, tmp_path: Path, old: str, new: str, message: str
) -> None:
    config = shop(db, tmp_path, config_text=batches.CONFIG.replace(old, new))
    result = run("check", "-c", str(config))
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) <= 2  # one message (Rich may wrap it)


def test_column_names_match_case_insensitively(db: Database, tmp_path: Path) -> None:
    text = batches.CONFIG.replace('quantity = "packs"', 'quantity = "PACKS"')
    result = run("check", "-c", str(shop(db, tmp_path, config_text=text)), "-f", "json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["rules"][0]["drifted"] == 2


def test_unreachable_database_names_host_and_port_but_never_the_password(tmp_path: Path) -> None:
    config = tmp_path / "trueup.toml"
    config.write_text('[database]\nurl = "postgresql://app:hunter2@127.0.0.1:1/shop"\n' + batches.CONFIG)
    result = run("check", "-c", str(config))
    assert result.exit_code == 2
    assert "cannot connect to postgresql at 127.0.0.1:1 (database 'shop')" in result.stderr
    assert "hunter2" not in result.output


def test_missing_driver_names_the_package(tmp_path: Path) -> None:
    result = run("check", "-c", str(tmp_path / "none.toml"), "--database", "postgresql+psycopg2://u:pw@h/db")
    assert result.exit_code == 2
    assert "config file not found" in result.stderr
    config = tmp_path / "trueup.toml"
    config.write_text(batches.CONFIG)
    result = run("check", "-c", str(config), "--database", "postgresql+psycopg2://u:pw@h/db")
    assert result.exit_code == 2
    assert "the psycopg2 driver for postgresql is not installed: pip install 'psycopg2-binary'" in result.stderr


def test_unknown_rule_is_a_usage_error(sqlite_db: Database, tmp_path: Path) -> None:
    result = run("check", "-c", str(shop(sqlite_db, tmp_path)), "--rule", "nope")
    assert result.exit_code == 2
    assert "no rule named 'nope' (rules: batches)" in result.stderr


def test_demo_builds_a_shop_with_four_kinds_of_drift(tmp_path: Path) -> None:
    result = run("demo", str(tmp_path / "shop"), "--items", "40")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "shop" / "shop.db").exists()
    assert "4 of 4 rule(s) drifted" in result.stdout
    again = run("check", "-c", str(tmp_path / "shop" / "trueup.toml"), "-f", "json")
    names = [r["name"] for r in json.loads(again.stdout)["rules"]]
    assert names == ["diapers", "storefront", "batches", "spare_pieces"]
    assert again.exit_code == 1


def test_init_writes_a_starter_config_listing_tables(sqlite_db: Database, tmp_path: Path) -> None:
    shop(sqlite_db, tmp_path)
    target = tmp_path / "new.toml"
    result = run("init", "--database", sqlite_db.url, "--config", str(target))
    assert result.exit_code == 0, result.output
    text = target.read_text()
    assert "#   batches: id, product_code, quantity_remaining, received_at" in text
    assert run("init", "--config", str(target)).exit_code == 2  # refuses to overwrite
    assert run("init", "--config", str(target), "--force").exit_code == 0


def test_every_command_has_help_with_an_example() -> None:
    paths = command_paths()
    assert len(paths) == 44  # 17 in `trueup --help`, 27 sub-commands
    gatherers = {("ledger",), ("token",), ("guard",)}  # groups that only list their sub-commands
    for path in sorted(set(paths) - gatherers):
        result = run(*path, "--help")
        assert result.exit_code == 0, path
        assert "Example:" in result.stdout, f"`trueup {' '.join(path)} --help` has no Example: line"


def test_markdown_report_for_tickets(sqlite_db: Database, tmp_path: Path) -> None:
    result = run("check", "-c", str(shop(sqlite_db, tmp_path)), "-f", "markdown")
    assert result.exit_code == 1
    assert "| product_code | recorded | expected | delta | value |" in result.stdout
    assert "| C-3 | 0 | 4 | +4 | +12.00 |" in result.stdout
    assert "| missing_row | warning |" in result.stdout


def test_html_report_is_one_self_contained_file_with_charts(sqlite_db: Database, tmp_path: Path) -> None:
    page = tmp_path / "drift.html"
    result = run("check", "-c", str(shop(sqlite_db, tmp_path)), "-f", "html", "-o", str(page))
    assert result.exit_code == 1
    html = page.read_text()
    assert html.count("<svg") == 2  # the distribution and the worst keys
    assert "Drifted keys by size of delta" in html and "Worst keys" in html
    assert "<td>C-3</td>" in html
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "") and "https://" not in html
    assert "<script" not in html


TEXT_TIME = {  # where the text `time` is -> (its config lines, the field and column the message names)
    "table": ('time = "at"', "", "expected[0].time", "'at' of table 'moves'"),
    "from": ('time = "m.at"', "", "expected[0].time", "'m.at'"),
    "recorded": ("", 'time = "changed"', "recorded.time", "'changed' of table 'stock'"),
}


@pytest.mark.parametrize("where", list(TEXT_TIME))
def test_a_time_column_holding_text_is_named_with_its_type(db: Database, tmp_path: Path, where: str) -> None:
    """A text `time` gets one line naming the rule, the column and its type, not the SQL the database rejected."""
    db.execute("CREATE TABLE stock (id integer, qty integer, changed varchar(30))")
    db.execute("CREATE TABLE moves (id integer, qty integer, at varchar(30))")
    db.execute("INSERT INTO stock VALUES (1, 3, '2025-01-01 10:00:00')")
    db.execute("INSERT INTO moves VALUES (1, 3, '2025-01-01 10:00:00')")
    source_time, recorded_time, field, column = TEXT_TIME[where]
    origin = (
        'from = "moves m"\nkey = ["m.id"]\nquantity = "m.qty"'
        if where == "from"
        else ('table = "moves"\nkey = ["id"]\nquantity = "qty"')
    )
    config = tmp_path / "trueup.toml"
    config.write_text(
        f'[database]\nurl = "{db.url}"\n[[rules]]\nname = "texts"\n[rules.recorded]\ntable = "stock"\n'
        f'key = ["id"]\nquantity = "qty"\n{recorded_time}\n[[rules.expected]]\n{origin}\n{source_time}\n'
    )
    if db.kind == "sqlite" and where == "from":  # SQLite's results carry no type; julianday() reads text times
        assert run("check", "-c", str(config)).exit_code == 0
        return
    for command in (["check"], ["plan"], ["sync", "--rule", "texts", "--key", "1"]):
        result = run(*command, "-c", str(config))
        assert result.exit_code == 2, (command, result.output)
        [line] = result.stderr.strip().splitlines()
        assert line.startswith("error: ") and f"rule 'texts': {field}: column {column} is of type " in line, line
        assert "char" in line.lower() and "not a date or time" in line
        assert "operator" not in line and "interval" not in line
