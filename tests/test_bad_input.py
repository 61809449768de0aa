"""Bad input gets one line naming the place and exit 2 (or a LedgerError from the API), never a traceback.

Each case here once ended in a traceback, a silent guess or raw bytes on the screen (issue 10).
"""

from __future__ import annotations

import csv
import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.databases import Database
from tests.test_check_cli import shop
from trueup.cli import app
from trueup.examples import batches
from trueup.ledger import InvalidRequest, Ledger

runner = CliRunner()


def run(*args: str, env: dict[str, str] | None = None):
    return runner.invoke(app, [str(a) for a in args], env=env)


def one_line_error(result, *words: str, code: int = 2) -> str:
    """The command exited `code` with one `error:` line on stderr containing `words`, and no traceback."""
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    message = result.stderr.strip()
    assert "Traceback" not in result.output
    assert len(message.splitlines()) == 1 or message.startswith("Usage:"), message
    for word in words:
        assert word in message, message
    return message


# -- config ------------------------------------------------------------------------------------


def config_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "trueup.toml"
    path.write_text(f'[database]\nurl = "sqlite:///{tmp_path}/shop.db"\n{text}')
    return path


def test_a_bad_production_pattern_names_the_field(tmp_path: Path) -> None:
    path = config_file(tmp_path, "")
    path.write_text(path.read_text().replace("[database]\n", '[database]\nproduction_pattern = "(["\n'))
    one_line_error(run("check", "-c", path), "trueup.toml", "database.production_pattern", "not a regular expression")


def test_deeply_nested_toml_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "deep.toml"
    path.write_text("a = " + "[" * 5000 + "]" * 5000 + "\n")
    one_line_error(run("check", "-c", path), "deep.toml", "nested too deeply")


def test_insert_missing_takes_only_a_real_boolean(tmp_path: Path) -> None:
    text = batches.CONFIG.replace('quantity = "packs"', 'quantity = "packs"\ninsert_missing = "yes"', 1)
    one_line_error(run("check", "-c", config_file(tmp_path, text)), "rule 'batches'", "recorded.insert_missing")


def test_insert_defaults_naming_a_missing_column_fails_when_the_rule_is_resolved(db: Database, tmp_path: Path) -> None:
    text = batches.CONFIG.replace('quantity = "packs"', 'quantity = "packs"\ninsert_defaults = {colour = "red"}', 1)
    config = shop(db, tmp_path, config_text=text)
    one_line_error(run("check", "-c", config), "rule 'batches'", "insert_defaults", "no column 'colour'")


# -- arguments ---------------------------------------------------------------------------------


def test_a_since_beyond_any_date_is_a_usage_error(tmp_path: Path) -> None:
    result = run("history", "-c", config_file(tmp_path, ""), "--since", "99999999d")
    assert result.exit_code == 2 and "longer than 100 years" in result.stderr, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize("table", ["x;drop", "no_such_table"])
def test_backup_of_a_bad_table_name_writes_nothing(db: Database, tmp_path: Path, table: str) -> None:
    config = shop(db, tmp_path)
    backups = tmp_path / "backups"
    one_line_error(run("backup", "-c", config, "--table", table, "--backup-dir", backups), "--table", repr(table))
    assert not backups.exists()


def test_restore_refuses_a_backup_of_the_audit_tables(sqlite_db: Database, tmp_path: Path) -> None:
    config = shop(sqlite_db, tmp_path)
    assert run("apply", "-c", config, "--backup-dir", tmp_path / "b").exit_code == 0  # run 1, with its changes
    backups = tmp_path / "audit"
    assert run("backup", "-c", config, "--table", "trueup_runs", "--backup-dir", backups).exit_code == 0
    [manifest] = backups.glob("*.manifest.json")
    sqlite_db.execute("UPDATE trueup_runs SET status = 'undone'")  # what a later undo would have recorded
    one_line_error(run("restore", manifest, "-c", config, "--confirm"), "trueup_runs", "would be lost")
    assert sqlite_db.rows("SELECT id, status FROM trueup_runs") == [(1, "undone")]


def test_undo_refuses_force_with_skip_conflicts(db: Database, tmp_path: Path) -> None:
    config = shop(db, tmp_path)
    one_line_error(run("undo", "1", "-c", config, "--force", "--skip-conflicts"), "--force", "--skip-conflicts")
    assert "trueup_runs" not in db.engine.dialect.get_table_names(db.engine.connect())


# -- the ledger --------------------------------------------------------------------------------


@pytest.mark.parametrize("qty", ["1e999999", "1e40", "NaN", "-1"])
def test_ledger_cli_refuses_impossible_quantities(tmp_path: Path, monkeypatch, qty: str) -> None:
    monkeypatch.chdir(tmp_path)
    books = f"sqlite:///{tmp_path}/books.db"
    one_line_error(run("ledger", "issue", "x", "shop", qty, "-d", books), "qty")
    one_line_error(run("ledger", "receive", "x", "shop", "5", "--unit-cost", qty, "-d", books), "unit_cost")


@pytest.mark.parametrize(
    "call, argument",
    [
        (lambda books: books.receive("x", "shop", 10**30, unit_cost=1), "qty"),
        (lambda books: books.receive("x", "shop", 5, unit_cost=Decimal("1e40")), "unit_cost"),
        (lambda books: books.receive("x", "shop", 10**9, unit_cost=10**9), "worth"),
        (lambda books: books.receive("x", "shop", 0.1, unit_cost=1), "float"),
        (lambda books: books.issue("x", "shop", Decimal("1e999999")), "qty"),
        (lambda books: books.receive("x", "shop", 5, unit_cost=1, at="yesterday"), "at must be a datetime"),
        (lambda books: books.receive("x", "shop", 5, unit_cost=1, at=date(2020, 1, 1)), "at must be a datetime"),
        (lambda books: books.balance("x", as_of="2020"), "as_of must be a datetime"),
        (lambda books: books.available("x", "shop", at=3), "at must be a datetime"),
    ],
)
def test_ledger_api_names_the_bad_argument(db: Database, call, argument: str) -> None:
    with Ledger(db.url) as books:
        with pytest.raises(InvalidRequest, match=argument):
            call(books)
        assert books.balance("x") == 0


def test_ledger_accepts_exact_quantities_and_rounds_the_cost(db: Database) -> None:
    with Ledger(db.url) as books:
        books.receive("x", "shop", "0.5", unit_cost=Decimal("0.333333"), lot="A")
        books.receive("x", "shop", 2, unit_cost="1.5", lot="B")
        assert books.issue("x", "shop", Decimal("0.5")).cost == Decimal("0.166666")  # 0.1666665, half to even
        assert books.balance("x") == 2


# -- cost exports ------------------------------------------------------------------------------

LOTS = "lot_id,sku,received,quantity,unit_cost\nL1,A,2026-01-01,10,2\n"


def cost(tmp_path: Path, sales: bytes | str, *extra: str, name: str = "sales.csv"):
    path = tmp_path / name
    path.write_bytes(sales.encode() if isinstance(sales, str) else sales)
    (tmp_path / "lots.csv").write_text(LOTS)
    return run("cost", "--sales", path, "--lots", tmp_path / "lots.csv", "--out", tmp_path / "out", *extra)


def test_a_year_zero_date_is_a_finding_naming_the_line(tmp_path: Path) -> None:
    result = cost(tmp_path, "sale_id,sku,date,quantity\nS1,A,2026-01-02,1\nS2,A,0000-01-01,1\n", "-f", "json")
    assert result.exit_code == 1, result.output
    [finding] = json.loads(result.stdout)["findings"]
    assert finding["category"] == "parse_error" and finding["sku"] == "A"
    assert finding["message"] == "sales.csv:3: date '0000-01-01' is outside the years 1000–9999"


@pytest.mark.parametrize(
    "name, data, words",
    [
        ("sales.xlsx", b"not a spreadsheet\n", ["sales.xlsx", "cannot read it as Excel"]),
        ("sales.csv", bytes(range(256)) * 40, ["sales.csv", "not a text (CSV) file"]),
        ("sales.csv", b"sale_id,SKU,SKU,date,qty\nS1,A,B,2026-01-02,1\n", ["sales.csv", "two columns are named 'SKU'"]),
        ("sales.csv", b"sale_id,sku,date,Qty,Quantity\nS1,A,2026-01-02,1,5\n", ["sales.csv", "'Qty' and 'Quantity'"]),
    ],
)
def test_unreadable_or_ambiguous_exports_write_nothing(tmp_path: Path, name: str, data: bytes, words: list) -> None:
    message = one_line_error(cost(tmp_path, data, name=name), *words)
    assert "\ufffd" not in message and all(c >= " " for c in message)
    assert not (tmp_path / "out").exists()


def test_headers_found_are_quoted_printably(tmp_path: Path) -> None:
    message = one_line_error(
        cost(tmp_path, b"Or\x1bder number,When it was sold\nS1,2026-01-02\nS2,2026-01-03\n"), "sales.csv", "found:"
    )
    assert "Or\\x1bder number" in message and "\x1b" not in message


def test_a_product_name_beside_the_sku_is_not_ambiguous(tmp_path: Path) -> None:
    result = cost(tmp_path, "Order ID,Date,SKU,Product,Qty,Price\nS1,2026-01-02,A,Apple,1,9\n", "-f", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["summary"]["inputs"][0]["columns"]["sku"] == "SKU"


def test_formula_cells_are_neutralised_in_csv_and_raw_in_json(tmp_path: Path) -> None:
    sales = (
        'sale_id,sku,date,quantity\nS1,A,2026-01-02,1\nS2,"=HYPERLINK(""x"")",2026-01-02,1\nS3,@B,2026-01-02,-4\n'
        '"S4","\tC",2026-01-02,-2\n'
    )
    result = cost(tmp_path, sales, "-f", "json", "--sku-case", "keep")
    assert result.exit_code == 1, result.output
    with (tmp_path / "out" / "quarantined_rows.csv").open(newline="") as handle:
        held = {row["id"]: row for row in csv.DictReader(handle)}
    assert held["S2"]["sku_raw"] == held["S2"]["sku"] == '\'=HYPERLINK("x")'
    assert (held["S3"]["sku"], held["S3"]["quantity_raw"]) == ("'@B", "-4")  # a plain negative number is data
    with (tmp_path / "out" / "quarantine.csv").open(newline="") as handle:
        skus = {row["sku"] for row in csv.DictReader(handle)}
    assert held["S4"]["sku_raw"] == "'\tC"  # a leading tab too
    assert skus == {'\'=HYPERLINK("x")', "'@B", "C"}  # the SKU itself is trimmed
    assert {f["sku"] for f in json.loads(result.stdout)["findings"]} == {'=HYPERLINK("x")', "@B", "C"}


# -- rendering ---------------------------------------------------------------------------------


def test_a_megabyte_sku_is_shortened_in_the_table_but_whole_in_json(tmp_path: Path) -> None:
    sku = "S" * 1_000_000
    sales = f"sale_id,sku,date,quantity\nS1,A,2026-01-02,1\nS2,{sku},2026-01-02,1\n"
    table = cost(tmp_path, sales)
    assert table.exit_code == 1 and len(table.stdout) < 20_000, len(table.stdout)
    assert "S" * 119 + "…" in table.stdout.replace("\n", "").replace("│", "").replace(" ", "")
    document = cost(tmp_path, sales, "-f", "json")
    assert sku in {f["sku"] for f in json.loads(document.stdout)["findings"]}


@pytest.mark.parametrize("fmt", ["table", "markdown", "html"])
def test_a_megabyte_key_is_shortened_in_check_reports(sqlite_db: Database, tmp_path: Path, fmt: str) -> None:
    config = shop(sqlite_db, tmp_path)
    code = {"code": "K" * 10**6}
    sqlite_db.execute("UPDATE warehouse_inventory SET product_code = :code WHERE product_code = 'B-2'", code)
    result = run("check", "-c", config, "-f", fmt, env={"COLUMNS": "300"})
    assert result.exit_code == 1, result.output
    assert len(result.stdout) < 60_000 and "K" * 119 + "…" in result.stdout
    document = json.loads(run("check", "-c", config, "-f", "json").stdout)
    assert ["K" * 10**6] in [d["key"] for d in document["rules"][0]["drift"]]
