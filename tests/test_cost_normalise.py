"""Normalising messy exports: every value read exactly, every unreadable one a finding that quotes it."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest

import trueup.cost
from trueup.cost.columns import resolve
from trueup.cost.normalise import normalise
from trueup.cost.read import read_csv
from trueup.errors import InputError, UsageError

LOTS_CSV = b"Lot,SKU,Received,Quantity,Unit Cost\nL1,A,2026-01-01,100000,1\n"


def parse_sales(rows: list[tuple[str, str, str]], **options) -> tuple[list[dict], list]:
    text = "Order ID,Item Code,Sold At,Qty\n" + "".join(f'{i},"{s}","{d}","{q}"\n' for i, (s, d, q) in enumerate(rows))
    sales, lots = read_csv("sales.csv", text.encode()), read_csv("lots.csv", LOTS_CSV)
    maps = {
        "sales": resolve("sales", sales.name, sales.headers, {}),
        "lots": resolve("lots", lots.name, lots.headers, {}),
    }
    sold, _, findings = normalise(sales, lots, maps, **options)
    scale = sold.scales.quantity
    parsed = [
        {
            "sku": r["sku"],
            "at": r["at"],
            "quantity": None if r["quantity"] is None else Decimal(r["quantity"]).scaleb(-scale),
        }
        for r in sold.frame.iter_rows(named=True)
    ]
    return parsed, findings


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-11", datetime(2026, 1, 11)),
        ("2026-01-11 09:15", datetime(2026, 1, 11, 9, 15)),
        ("2026-01-11T09:15:30.250Z", datetime(2026, 1, 11, 9, 15, 30, 250000)),
        ("2026-01-11T09:15:00-05:00", datetime(2026, 1, 11, 9, 15)),
        ("20260111", datetime(2026, 1, 11)),
        ("2026/01/11", datetime(2026, 1, 11)),
        ("Jan 11, 2026", datetime(2026, 1, 11)),
        ("January 11 2026", datetime(2026, 1, 11)),
        ("11 Jan 2026", datetime(2026, 1, 11)),
        ("13/01/2026", datetime(2026, 1, 13)),
        ("01/13/2026 3:15 PM", datetime(2026, 1, 13, 15, 15)),
        ("05/05/2026", datetime(2026, 5, 5)),
    ],
)
def test_dates(text: str, expected: datetime) -> None:
    parsed, findings = parse_sales([("A", text, "1")])
    assert findings == [] and parsed[0]["at"] == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1,234", "1234"),
        ("1 234", "1234"),
        ("1.234,5", "1234.5"),
        ("12,5", "12.5"),
        ("(3)", "-3"),
        ("-2", "-2"),
        (" 7 ", "7"),
        ("1,234,567", "1234567"),
        ("0.25", "0.25"),
    ],
)
def test_quantities(text: str, expected: str) -> None:
    parsed, findings = parse_sales([("A", "2026-01-02", text)])
    assert findings == [] and parsed[0]["quantity"] == Decimal(expected)


def test_skus_are_trimmed_and_folded() -> None:
    parsed, _ = parse_sales([(" abc-1 ", "2026-01-02", "1"), ("ABC-1", "2026-01-02", "1")])
    assert {row["sku"] for row in parsed} == {"ABC-1"}
    parsed, _ = parse_sales([(" abc-1 ", "2026-01-02", "1")], sku_case="keep")
    assert parsed[0]["sku"] == "abc-1"


def test_an_ambiguous_date_is_a_finding_until_the_format_is_given() -> None:
    _, findings = parse_sales([("A", "03/04/2026", "1")])
    assert [(f.sku, f.category, f.message, f.sources[0].column, f.sources[0].raw) for f in findings] == [
        ("A", "parse_error", "sales.csv:2: date '03/04/2026' could be day/month or month/day", "Sold At", "03/04/2026")
    ]
    assert "--date-format %d/%m/%Y" in findings[0].action
    parsed, findings = parse_sales([("A", "03/04/2026", "1")], date_format="%d/%m/%Y")
    assert findings == [] and parsed[0]["at"] == datetime(2026, 4, 3)


@pytest.mark.parametrize(
    ("qty", "message"),
    [
        ("12 pcs", "quantity '12 pcs' is not a number"),
        ("12 USD", "quantity '12 USD' is not a plain number"),
        ("1.2.3", "quantity '1.2.3' is not a number"),
        ("", "no quantity"),
        ("0.1234567", "quantity '0.1234567' has more than 6 decimal places"),
        ("99999999999999999999", "quantity '99999999999999999999' is too large"),
    ],
)
def test_unreadable_quantities_name_the_cell(qty: str, message: str) -> None:
    _, findings = parse_sales([("A", "2026-01-02", qty)])
    assert [f.message for f in findings] == [f"sales.csv:2: {message}"]


def test_money_with_symbols_codes_and_separators() -> None:
    lots = [
        {"lot_id": f"L{i}", "sku": "A", "received": "2026-01-01", "quantity": "1", "unit_cost": cost}
        for i, cost in enumerate(["$1,234.50", "USD 1234.5", "1234,50 $", "1 234.50"])
    ]
    result = trueup.cost.compute([], lots)
    assert [lot.unit_cost for lot in result.lots_remaining()] == [Decimal("1234.50")] * 4


def test_costs_in_another_currency_are_findings() -> None:
    lots = [
        {"lot_id": "L1", "sku": "A", "received": "2026-01-01", "quantity": "1", "unit_cost": "$2.00"},
        {"lot_id": "L2", "sku": "A", "received": "2026-01-01", "quantity": "1", "unit_cost": "$2.10"},
        {"lot_id": "L3", "sku": "B", "received": "2026-01-01", "quantity": "1", "unit_cost": "€2.00"},
    ]
    result = trueup.cost.compute([], lots)
    assert [(f.sku, f.message) for f in result.findings] == [
        ("B", "lots row 3: unit cost '€2.00' is not in USD, the currency of the other lots")
    ]
    assert result.quarantined == {"B"}


def test_careful_csv_keeps_line_numbers_and_flags_ragged_rows() -> None:
    text = b'Sale,SKU,Date,Qty\nS1,A,2026-01-02,"multi\nline"\n\nS2,B,2026-01-02,1,234\nS3,C,2026-01-02,2\n'
    table = read_csv("sales.csv", text)
    assert [table.where(i) for i in range(table.frame.height)] == ["sales.csv:2", "sales.csv:5", "sales.csv:6"]
    result = trueup.cost.compute(
        table, [{"lot_id": "L", "sku": "C", "received": "2026-01-01", "quantity": "5", "unit_cost": "1"}]
    )
    messages = {f.sku: f.message for f in result.findings}
    assert messages["B"] == "sales.csv:5: 5 fields where the header has 4 (an unquoted separator inside a value?)"
    assert [line.sale_id for line in result.cogs()] == ["S3"]


def test_column_mapping_and_unknown_layouts(tmp_path) -> None:
    (tmp_path / "s.csv").write_text("Ref,Item,When,Units\n1,A,2026-01-02,1\n")
    (tmp_path / "l.csv").write_text("Batch,Item,Received,Units,Price\nB1,A,2026-01-01,1,2\n")
    with pytest.raises(InputError) as error:
        trueup.cost.compute(tmp_path / "s.csv", tmp_path / "l.csv")
    assert str(error.value) == (
        "s.csv: no column for date (e.g. Date, Sold At, Sale Date, Date Sold); found: Ref, Item, When, Units. "
        "Name them with --map sales.date=COLUMN"
    )
    result = trueup.cost.compute(tmp_path / "s.csv", tmp_path / "l.csv", columns=["sales.date=when", "sales.id=Ref"])
    assert [(line.sale_id, line.cogs) for line in result.cogs()] == [("1", Decimal(2))]
    with pytest.raises(UsageError, match="sales has no field 'colour'"):
        trueup.cost.compute(tmp_path / "s.csv", tmp_path / "l.csv", columns=["sales.colour=Ref"])
