"""`trueup cost` as users see it: files written, exact figures, quarantine messages and exit codes."""

from __future__ import annotations

import csv
import json
import shutil
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

import trueup.cost
from tests.databases import Database
from trueup.cli import app

EXAMPLES = Path(__file__).parent.parent / "examples" / "cost"
runner = CliRunner()


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["cost", *args])
    return result.exit_code, result.stdout, result.stderr


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def example(tmp_path: Path, *extra: str) -> tuple[int, str, str, Path]:
    out = tmp_path / "out"
    code, stdout, stderr = run(
        "--sales", str(EXAMPLES / "sales.csv"), "--lots", str(EXAMPLES / "lots.csv"), "--out", str(out), *extra
    )
    return code, stdout, stderr, out


def test_the_readme_example(tmp_path: Path) -> None:
    code, stdout, _, out = example(tmp_path)
    assert code == 1
    assert rows(out / "cogs.csv") == [
        {
            "sale_id": "1001",
            "sku": "ABC123",
            "date": "2026-01-04",
            "quantity": "4",
            "cogs": "10.00",
            "uncosted_quantity": "0",
            "lots": "L-1: 4 @ 2.50",
        },
        {
            "sale_id": "1002",
            "sku": "ABC123",
            "date": "2026-01-05",
            "quantity": "8",
            "cogs": "21.00",
            "uncosted_quantity": "0",
            "lots": "L-1: 6 @ 2.50; L-2: 2 @ 3.00",
        },
        {
            "sale_id": "1005",
            "sku": "ABC123",
            "date": "2026-01-07",
            "quantity": "-3",
            "cogs": "-8.50",
            "uncosted_quantity": "0",
            "lots": "L-1: -1 @ 2.50; L-2: -2 @ 3.00",
        },
        {
            "sale_id": "1004",
            "sku": "DEF456",
            "date": "2026-01-06",
            "quantity": "1200",
            "cogs": "490.00",
            "uncosted_quantity": "0",
            "lots": "L-3: 1000 @ 0.40; L-4: 200 @ 0.45",
        },
        {
            "sale_id": "1006",
            "sku": "DEF456",
            "date": "2026-01-08 14:30:00",
            "quantity": "300",
            "cogs": "135.00",
            "uncosted_quantity": "0",
            "lots": "L-4: 300 @ 0.45",
        },
    ]
    assert rows(out / "lots_remaining.csv") == [
        {
            "lot_id": "L-1",
            "sku": "ABC123",
            "received": "2026-01-02",
            "remaining_quantity": "1",
            "unit_cost": "2.50",
            "remaining_value": "2.50",
        },
        {
            "lot_id": "L-2",
            "sku": "ABC123",
            "received": "2026-01-03",
            "remaining_quantity": "10",
            "unit_cost": "3.00",
            "remaining_value": "30.00",
        },
        {
            "lot_id": "L-4",
            "sku": "DEF456",
            "received": "2026-01-05",
            "remaining_quantity": "500",
            "unit_cost": "0.45",
            "remaining_value": "225.00",
        },
    ]
    [quarantined] = rows(out / "quarantine.csv")
    assert quarantined["sku"] == "XYZ789" and quarantined["status"] == "quarantined"
    assert quarantined["category"] == "missing_lots" and quarantined["severity"] == "high"
    assert quarantined["action"] == "Upload purchase lots for XYZ789 covering 500 units sold on 2026-01-11"
    assert quarantined["source"] == "sales.csv:4"
    assert rows(out / "quarantined_rows.csv")[0]["sku_raw"] == "XYZ789"
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["cogs"], summary["ending_value"], summary["quarantined_skus"]) == (647.5, 257.5, ["XYZ789"])
    assert (summary["processed"], summary["skus"], summary["exit_code"]) == (2, 3, 1)
    assert "cost of goods sold" in stdout and "647.50" in stdout
    assert "1 SKU(s) quarantined; the other 2 were costed." in stdout


def test_one_bad_sku_leaves_its_neighbours_exactly_as_without_it(tmp_path: Path) -> None:
    clean = trueup.cost.compute(
        [r for r in rows(EXAMPLES / "sales.csv") if r["Item Code"] != "XYZ789"], rows(EXAMPLES / "lots.csv")
    )
    with_bad = trueup.cost.compute(EXAMPLES / "sales.csv", EXAMPLES / "lots.csv")
    assert clean.exit_code == 0 and with_bad.exit_code == 1

    def strip(result):
        return [line._replace(source=None) for line in result.cogs()]

    assert strip(clean) == strip(with_bad)
    assert [lot._replace(source=None) for lot in clean.lots_remaining()] == [
        lot._replace(source=None) for lot in with_bad.lots_remaining()
    ]


def test_policy_lets_a_sku_through_and_exit_is_zero(tmp_path: Path) -> None:
    code, _, _, out = example(tmp_path, "--policy", "missing_lots=medium", "--format", "json")
    assert code == 0
    [line] = [r for r in rows(out / "cogs.csv") if r["sku"] == "XYZ789"]
    assert (line["cogs"], line["uncosted_quantity"], line["lots"]) == ("0.00", "500", "")
    [finding] = rows(out / "quarantine.csv")
    assert (finding["severity"], finding["status"]) == ("medium", "processed")


def test_json_summary_on_stdout(tmp_path: Path) -> None:
    code, stdout, _, out = example(tmp_path, "--format", "json")
    document = json.loads(stdout)
    assert code == 1 and document["out"] == str(out)
    assert document["summary"]["cogs"] == 647.5
    assert [(f["sku"], f["category"], f["sources"][0]["where"]) for f in document["findings"]] == [
        ("XYZ789", "missing_lots", "sales.csv:4")
    ]


def test_a_critical_finding_stops_everything(tmp_path: Path) -> None:
    code, stdout, _, out = example(tmp_path, "--policy", "missing_lots=critical")
    assert code == 1
    assert rows(out / "cogs.csv") == [] and rows(out / "lots_remaining.csv") == []
    assert rows(out / "quarantine.csv")[0]["status"] == "stopped"
    assert json.loads((out / "summary.json").read_text())["stopped"] is True
    assert "A critical finding stopped the run: nothing was costed." in stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sales", "nope.csv", "--lots", "lots.csv"], "error: nope.csv: file not found"),
        (
            ["--sales", "sales.csv", "--lots", "lots.csv", "--map", "lots.unit_cost=Price"],
            "error: lots.csv: --map lots.unit_cost='Price', but there is no such column; found: Lot, SKU, Received, "
            "Quantity, Unit Cost",
        ),
        (["--sales", "sales.csv", "--lots", "lots.csv", "--policy", "late=low"], "error: --policy: unknown category"),
        (["--sales", "sales.csv"], "error: give exactly one of --lots FILE or --lots-sql QUERY"),
    ],
)
def test_cannot_run_exits_2_and_writes_nothing(tmp_path: Path, monkeypatch, args: list[str], message: str) -> None:
    for name in ("sales.csv", "lots.csv"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    code, stdout, stderr = run(*args, "--out", "out")
    assert code == 2 and stdout == ""
    assert stderr.startswith(message) and stderr.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_a_missing_required_column_names_found_and_needed(tmp_path: Path) -> None:
    (tmp_path / "sales.csv").write_text("Order,Item,When\n1,A,2026-01-01\n")
    code, _, stderr = run("--sales", str(tmp_path / "sales.csv"), "--lots", str(EXAMPLES / "lots.csv"), "--out", "o")
    assert code == 2
    assert stderr == (
        "error: sales.csv: no column for date (e.g. Date, Sold At, Sale Date, Date Sold); quantity (e.g. Qty, "
        "Quantity, Units, Qty Sold); found: Order, Item, When. Name them with --map sales.date=COLUMN --map "
        "sales.quantity=COLUMN\n"
    )


def test_duplicates_and_cost_anomalies(tmp_path: Path) -> None:
    sales = [
        {"sale_id": "S1", "sku": "A", "date": "2026-01-05", "quantity": "1"},
        {"sale_id": "S1", "sku": "A", "date": "2026-01-05", "quantity": "1"},
        {"sale_id": "S2", "sku": "B", "date": "2026-01-05", "quantity": "1"},
    ]
    lots = [
        {"lot_id": f"L{i}", "sku": sku, "received": "2026-01-01", "quantity": "5", "unit_cost": cost}
        for i, (sku, cost) in enumerate([("A", "2"), ("B", "2.00"), ("B", "2.10"), ("B", "25.00"), ("C", "0")])
    ]
    result = trueup.cost.compute(sales, lots)
    assert [(f.sku, f.category, f.severity, f.message) for f in result.findings] == [
        (
            "A",
            "duplicate_id",
            "high",
            "sale id S1 for A appears on 2 rows (sales row 1, sales row 2) with identical values (exported twice?)",
        ),
        ("B", "cost_anomaly", "medium", "lot L3 of B costs 25.00 per unit, 12× the median of its 3 lots (2.10)"),
        ("C", "cost_anomaly", "medium", "lot L4 of C has unit cost 0.00"),
    ]
    assert result.quarantined == {"A"}
    assert trueup.cost.compute(sales, lots, policy=["cost_anomaly=high"]).quarantined == {"A", "B", "C"}


def test_excel_and_parquet_give_the_same_result(tmp_path: Path) -> None:
    sales = pl.read_csv(EXAMPLES / "sales.csv", infer_schema=False)
    lots = pl.DataFrame(
        {
            "Lot": ["L-1", "L-2", "L-3", "L-4"],
            "SKU": ["ABC123", "ABC123", "DEF456", "DEF456"],
            "Received": pl.Series(["2026-01-02", "2026-01-03", "2026-01-01", "2026-01-05"]).str.to_date(),
            "Quantity": [10, 10, 1000, 1000],
            "Unit Cost": pl.Series(["2.50", "3.00", "0.40", "0.45"]).str.to_decimal(scale=2),
        }
    )
    sales.write_excel(tmp_path / "sales.xlsx")
    lots.write_parquet(tmp_path / "lots.parquet")
    lots.with_columns(pl.col("Unit Cost").cast(pl.Float64)).write_excel(tmp_path / "lots.xlsx")
    expected = [
        line._replace(source=None) for line in trueup.cost.compute(EXAMPLES / "sales.csv", EXAMPLES / "lots.csv").cogs()
    ]
    for sales_file, lots_file in (("sales.xlsx", "lots.parquet"), ("sales.xlsx", "lots.xlsx")):
        result = trueup.cost.compute(tmp_path / sales_file, tmp_path / lots_file)
        assert [line._replace(source=None) for line in result.cogs()] == expected
        assert [f.sources[0].where for f in result.findings] == ["sales.xlsx:4"]


def test_report_html(tmp_path: Path) -> None:
    code, _, _, out = example(tmp_path, "--report")
    html = (out / "report.html").read_text()
    assert code == 1 and html.startswith("<!doctype html>")
    assert "Upload purchase lots for XYZ789 covering 500 units sold on 2026-01-11" in html
    assert "647.50" in html and "<script" not in html


def test_help_has_an_example() -> None:
    result = runner.invoke(app, ["cost", "--help"])
    assert result.exit_code == 0 and "Example: trueup cost --sales" in result.stdout


def test_sales_and_lots_from_sql(db: Database, tmp_path: Path) -> None:
    metadata = sa.MetaData()
    sales = sa.Table(
        "shop_sales",
        metadata,
        sa.Column("order_id", sa.String(20)),
        sa.Column("sku", sa.String(20)),
        sa.Column("sold_at", sa.DateTime),
        sa.Column("qty", sa.Integer),
    )
    lots = sa.Table(
        "shop_lots",
        metadata,
        sa.Column("lot", sa.String(20)),
        sa.Column("sku", sa.String(20)),
        sa.Column("received", sa.Date),
        sa.Column("qty", sa.Integer),
        sa.Column("unit_cost", sa.Numeric(12, 4)),
    )
    db.create(metadata)
    from datetime import date, datetime

    db.insert(
        sales,
        [
            {"order_id": "O1", "sku": "abc", "sold_at": datetime(2026, 1, 4, 9, 30), "qty": 4},
            {"order_id": "O2", "sku": "ZZZ", "sold_at": datetime(2026, 1, 4, 10, 0), "qty": 1},
        ],
    )
    db.insert(
        lots, [{"lot": "L1", "sku": "ABC", "received": date(2026, 1, 2), "qty": 10, "unit_cost": Decimal("2.1234")}]
    )
    code, stdout, stderr = run(
        "--sales-sql",
        "SELECT order_id, sku, sold_at AS date, qty FROM shop_sales WHERE sku <> 'nothing:here'",
        "--lots-sql",
        "SELECT * FROM shop_lots",
        "--database",
        db.url,
        "--out",
        str(tmp_path / "out"),
        "--format",
        "json",
    )
    assert code == 1, stderr
    document = json.loads(stdout)
    assert document["summary"]["cogs"] == 8.4936
    assert [(f["sku"], f["category"], f["sources"][0]["where"]) for f in document["findings"]] == [
        ("ZZZ", "missing_lots", "sales query row 2")
    ]
    assert rows(tmp_path / "out" / "cogs.csv")[0]["date"] == "2026-01-04 09:30:00"


# Hand-computed. LIFO: ABC123 12.00 + (18.00 + 5.00) - (5.00 + 3.00) = 27.00, DEF456 (450 + 80) + 120 = 650.00;
# left L-1 10 @ 2.50, L-2 1 @ 3.00, L-3 500 @ 0.40. Average: ABC123 pool 20 units / 55.00: 11.00, 22.00, and the
# return gives back 3/8 of 1002's 22.00 = 8.25; DEF456 pool 2,000 / 850.00: 510.00, then 340 × 300/800 = 127.50.
@pytest.mark.parametrize(("method", "cogs", "ending"), [("lifo", "677.00", "228.00"), ("average", "662.25", "242.75")])
def test_other_methods_from_the_command_line(tmp_path: Path, method: str, cogs: str, ending: str) -> None:
    code, _, _, out = example(tmp_path, "--method", method, "--format", "json")
    summary = json.loads((out / "summary.json").read_text())
    assert code == 1 and summary["method"] == method
    assert (Decimal(str(summary["cogs"])), Decimal(str(summary["ending_value"]))) == (Decimal(cogs), Decimal(ending))
    assert Decimal(cogs) + Decimal(ending) == Decimal("905.00")  # purchases of ABC123 and DEF456


def test_rows_not_costed_keep_raw_beside_parsed(tmp_path: Path) -> None:
    (tmp_path / "sales.csv").write_text(
        'Order ID,Item Code,Sold At,Qty\n1, abc123 ,"Jan 5, 2026",12 pcs\n'
        "2,abc123,2026-01-05,1\n3,DEF456,2026-01-06,1\n"
    )
    code, _, _ = run(
        "--sales", str(tmp_path / "sales.csv"), "--lots", str(EXAMPLES / "lots.csv"), "--out", str(tmp_path / "out")
    )
    assert code == 1
    held = rows(tmp_path / "out" / "quarantined_rows.csv")
    assert held[0] == {
        "input": "sales",
        "source": "sales.csv:2",
        "id_raw": "1",
        "id": "1",
        "sku_raw": " abc123 ",
        "sku": "ABC123",
        "date_raw": "Jan 5, 2026",
        "date": "2026-01-05",
        "quantity_raw": "12 pcs",
        "quantity": "",
        "unit_cost_raw": "",
        "unit_cost": "",
    }
    assert [(r["input"], r["source"]) for r in held] == [
        ("sales", "sales.csv:2"),
        ("sales", "sales.csv:3"),
        ("lots", "lots.csv:2"),
        ("lots", "lots.csv:3"),
    ]
    [finding] = rows(tmp_path / "out" / "quarantine.csv")
    assert (finding["sku"], finding["column"], finding["raw_value"]) == ("ABC123", "Qty", "12 pcs")
    assert [r["sale_id"] for r in rows(tmp_path / "out" / "cogs.csv")] == ["3"]
