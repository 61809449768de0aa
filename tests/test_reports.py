"""What a reader sees in the reports: words, marks, money, NULLs, alignment and charts, on every output.

The shop is the batches shape: A-1 correct, B-2 recorded 5 against 3 (delta -2
at 1.005 a pack: -2.01), C-3 recorded 0 against 4 (+4 at 3.00: +12.00), D-4
only in batches, and one batch with a NULL product code.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from tests.databases import Database
from trueup.cli import app
from trueup.examples import batches
from trueup.reconcile.history import Round
from trueup.report import chart
from trueup.report.format import Money, literal, money, value_text
from trueup.report.html import drift_over_time

runner = CliRunner()
PAST = datetime(2025, 3, 1)
CHECKS = """
[[checks]]
name = "no negative packs"
sql = "SELECT product_code, packs FROM warehouse_inventory WHERE packs < 0"
[[checks]]
name = "no empty stock"
severity = "warning"
sql = "SELECT product_code, packs FROM warehouse_inventory WHERE packs = 0"
"""


def run(*args: str, env: dict[str, str] | None = None):
    return runner.invoke(app, list(args), env={"COLUMNS": "200", **(env or {})})


metadata = sa.MetaData()
inventory = sa.Table(  # the batches shape, with prices to the tenth of a cent and NULL-able batch codes
    "warehouse_inventory",
    metadata,
    sa.Column("product_code", sa.String(32), primary_key=True),
    sa.Column("packs", sa.Integer, nullable=False),
    sa.Column("pack_price", sa.Numeric(12, 3), nullable=False),
)
batch_rows = sa.Table(
    "batches",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("product_code", sa.String(32)),
    sa.Column("quantity_remaining", sa.Integer, nullable=False),
    sa.Column("received_at", sa.DateTime, nullable=False),
)


def shop(db: Database, tmp_path: Path, report: str = '[report]\ncurrency = "EUR"\n', codes=("B-2", "C-3")) -> Path:
    db.create(metadata)
    b2, c3 = codes
    db.insert(
        inventory,
        [
            {"product_code": "A-1", "packs": 10, "pack_price": "2.50"},
            {"product_code": b2, "packs": 5, "pack_price": "1.005"},
            {"product_code": c3, "packs": 0, "pack_price": "3.00"},
        ],
    )
    rows = [("A-1", 10), (b2, 3), (c3, 4), ("D-4", 8), (None, 1)]
    db.insert(
        batch_rows,
        [
            {"id": i, "product_code": code, "quantity_remaining": qty, "received_at": PAST}
            for i, (code, qty) in enumerate(rows, start=1)
        ],
    )
    path = tmp_path / "trueup.toml"
    path.write_text(f'[database]\nurl = "{db.url}"\n{report}' + batches.CONFIG + CHECKS)
    return path


def unboxed(text: str) -> str:
    """Terminal output without panel borders and line wrapping, for sentence-level assertions."""
    return re.sub(r"\s+", " ", re.sub(r"[│╭╮╰╯─]", " ", text))


SENTENCE = (
    "4 items checked, 2 drifted, 6 units off in total; the discrepancies are worth 14.01 EUR, "
    "and correcting them raises the stock's book value by 9.99 EUR."
)


def test_terminal_report_reads_without_jargon(sqlite_db: Database, tmp_path: Path) -> None:
    result = run("check", "-c", str(shop(sqlite_db, tmp_path)))
    assert result.exit_code == 1
    text = unboxed(result.stdout)
    assert SENTENCE in text
    assert "|value|" not in text and "value impact" not in text
    lines = result.stdout.splitlines()
    assert re.search(r"│\s+C-3\s+0\s+4\s+\+4\s+\+12\.00 EUR\s+│", result.stdout)
    assert re.search(r"│\s+B-2\s+5\s+3\s+-2\s+-2\.01 EUR\s+│", result.stdout)  # -2 × 1.005, half to even
    # numbers are right-aligned: the value column ends at the same place on both rows
    ends = {line.rstrip(" │").__len__() for line in lines if "EUR" in line and ("C-3" in line or "B-2" in line)}
    assert len(ends) == 1
    assert "✗ batches" in result.stdout
    assert re.search(r"no negative packs\s+error\s+✓ holds", result.stdout)
    assert re.search(r"no empty stock\s+warning\s+✗ 1 row breaks it\s+product_code=C-3, packs=0", result.stdout)
    assert re.search(r"null_key\s+warning .*\s+NULL\s", result.stdout)
    assert "None" not in result.stdout


def test_markdown_report_reads_the_same(sqlite_db: Database, tmp_path: Path) -> None:
    result = run("check", "-c", str(shop(sqlite_db, tmp_path)), "-f", "markdown")
    assert result.exit_code == 1
    text = result.stdout
    assert "## ✗ batches" in text and SENTENCE in text
    assert "_recorded is the stock figure the system shows; expected is what its records add up to; " in text
    assert "| product_code | recorded | expected | delta | value |\n| --- | ---: | ---: | ---: | ---: |" in text
    assert "| C-3 | 0 | 4 | +4 | +12.00 EUR |" in text and "| B-2 | 5 | 3 | -2 | -2.01 EUR |" in text
    assert "| no negative packs | error | ✓ holds |  |" in text
    assert "| no empty stock | warning | ✗ 1 row breaks it | product_code=C-3, packs=0 |" in text
    assert "| null_key | warning |" in text and "| NULL |" in text
    assert "None" not in text and "|value|" not in text


def test_html_report_reads_the_same(sqlite_db: Database, tmp_path: Path) -> None:
    page = tmp_path / "drift.html"
    assert run("check", "-c", str(shop(sqlite_db, tmp_path)), "-f", "html", "-o", str(page)).exit_code == 1
    html = page.read_text()
    figures = dict(re.findall(r'<div class="figure"><b[^>]*>([^<]*)</b><span>([^<]*)</span>', html))
    assert {label: value for value, label in figures.items()} == {
        "items checked": "4",
        "drifted": "2",
        "units off in total": "6",
        "value of the discrepancies": "14.01 EUR",
        "change in stock value once corrected": "+9.99 EUR",
    }
    assert '<th class="num">value</th>' in html and '<td class="num">+12.00 EUR</td>' in html
    assert '<td class="num">-2.01 EUR</td>' in html
    assert '<td class="ok">✓ holds</td>' in html
    assert "delta = expected − recorded is the correction a repair would make" in html
    assert '<td class="sev-warning">✗ 1 row breaks it</td>' in html and "product_code=C-3, packs=0" in html
    assert "<td>NULL</td>" in html and "None" not in html
    assert "|value|" not in html and "value impact" not in html


def test_money_without_a_currency_still_has_fixed_decimals(sqlite_db: Database, tmp_path: Path) -> None:
    config = shop(sqlite_db, tmp_path, report="")
    result = run("check", "-c", str(config), "-f", "markdown")
    assert "| C-3 | 0 | 4 | +4 | +12.00 |" in result.stdout and "| B-2 | 5 | 3 | -2 | -2.01 |" in result.stdout
    document = run("check", "-c", str(config), "-f", "json").stdout
    assert '"value": -2.01}' in document  # JSON keeps the exact -2.010 (trailing zeros dropped), unrounded


def test_a_bad_currency_names_the_field(sqlite_db: Database, tmp_path: Path) -> None:
    result = run("check", "-c", str(shop(sqlite_db, tmp_path, report='[report]\ncurrency = "1 EUR"\n')))
    assert result.exit_code == 2
    assert "report.currency: '1 EUR' is not a currency" in result.stderr


@pytest.mark.parametrize(
    ("value", "style", "signed", "shown"),
    [
        (Decimal("-65.1"), Money("EUR"), False, "-65.10 EUR"),
        (Decimal("-4"), Money("EUR"), False, "-4.00 EUR"),
        (Decimal("-88.62"), Money("$"), False, "-$88.62"),
        (Decimal("1234567.5"), Money(), True, "+1,234,567.50"),
        (Decimal("0.125"), Money(), False, "0.12"),  # half to even, in decimal
        (Decimal("0.135"), Money(), False, "0.14"),
        (Decimal("-0.001"), Money(), True, "0.00"),
        (Decimal("12345678901234567890.015"), Money(), False, "12,345,678,901,234,567,890.02"),  # beyond floats
        (Decimal("1234.5"), Money("JPY", 0), False, "1,234 JPY"),
        (Decimal("2.505"), Money(decimals=None), False, "2.505"),
        (None, Money("EUR"), False, "—"),
    ],
)
def test_money(value: Decimal | None, style: Money, signed: bool, shown: str) -> None:
    assert money(value, style, signed=signed) == shown


def test_literal_keeps_what_rich_would_read_as_markup_or_emoji() -> None:
    from rich.console import Console

    console = Console(file=None, width=200, record=True)
    for text in ("(?<![a-z])(prod|production|live)(?![a-z])", "[red]B-2[/red]", "[database].url", "a:cat:b"):
        console.print(literal(text))
    assert console.export_text().splitlines() == [
        "(?<![a-z])(prod|production|live)(?![a-z])", "[red]B-2[/red]", "[database].url", "a:cat:b"
    ]  # fmt: skip
    assert value_text(None) == "NULL" and value_text(0) == "0"


def test_keys_that_look_like_markup_print_as_written(sqlite_db: Database, tmp_path: Path) -> None:
    config = shop(sqlite_db, tmp_path, codes=("[b]B-2[/b]", "C:cat:3"))
    for args in (["check"], ["plan"], ["check", "-f", "markdown"]):
        result = run(*args, "-c", str(config))
        assert "[b]B-2[/b]" in result.stdout and "C:cat:3" in result.stdout, args
    applied = run("apply", "-c", str(config), "--no-backup", "-f", "json")
    run_id = json.loads(applied.stdout)["run_id"]
    shown = run("runs", "show", str(run_id), "-c", str(config))
    assert "[b]B-2[/b]" in shown.stdout and "C:cat:3" in shown.stdout


def test_config_errors_keep_their_brackets(tmp_path: Path) -> None:
    config = tmp_path / "trueup.toml"
    config.write_text(batches.CONFIG)
    result = run("check", "-c", str(config), env={"TRUEUP_DATABASE_URL": ""})
    assert result.exit_code == 2
    assert "no database: set [database].url, $TRUEUP_DATABASE_URL or --database" in result.stderr


def test_ledger_names_print_as_written(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    received = run("ledger", "receive", "[i]bolt[/i]", "shop:pin:", "5", "--unit-cost", "1", "-d", url)
    assert received.exit_code == 0, received.output
    assert "receive [i]bolt[/i]" in received.stdout and "shop:pin:" in received.stdout
    valuation = run("ledger", "valuation", "-d", url)
    assert "[i]bolt[/i]" in valuation.stdout


# -- drift over time ---------------------------------------------------------------------------

START = datetime(2026, 11, 21, 10, 0)


def rounds(*spec: tuple[int, str, int, int]) -> list[Round]:
    """(minutes after START, kind, drifted, corrected) -> history rounds."""
    return [
        Round("stock", kind, "drift", START + timedelta(minutes=m), 0.1, "schedule", 10, d, c, 0, None)
        for m, kind, d, c in spec
    ]


def test_drift_over_time_plots_full_rounds_only_and_says_what_it_left_out() -> None:
    history = rounds((0, "full", 20, 0), (2, "keys", 1, 1), (5, "full", 23, 23), (7, "incremental", 2, 2),
                     (10, "full", 0, 0))  # fmt: skip
    svg, note = drift_over_time(history)
    assert svg.count("<circle") == 3  # one dot per full round
    assert re.findall(r"<title>[^<]*: (\d+) drifted</title>", svg) == ["20", "23", "0"]
    assert re.findall(r"<title>[^<]*: (\d+) corrected</title>", svg) == ["23"]
    assert (
        note == "Not plotted: 2 incremental or hook round(s), which checked only some items; they corrected 3 key(s)."
    )


def test_drift_over_time_breaks_the_line_where_rounds_are_missing() -> None:
    history = rounds(*[(m, "full", 5, 0) for m in (0, 5, 10, 15, 60, 65, 70)])
    svg, _ = drift_over_time(history)
    assert svg.count("<polyline") == 2  # 10:15 -> 11:00 is a gap, not a ramp
    assert chart.runs([r.started_at for r in history]) == [[0, 1, 2, 3], [4, 5, 6]]


def test_drift_over_time_labels_its_y_axis_and_keeps_corrections_visible() -> None:
    svg, _ = drift_over_time(rounds((0, "full", 130, 130), (5, "full", 3, 0), (10, "full", 2, 0)))
    labels = re.findall(r'text-anchor="end" font-size="10" font-weight="normal" fill="#333">(\d+)</text>', svg)
    assert labels == ["0", "50", "100", "150"]
    assert svg.count("<rect") >= 1 and "keys corrected" in svg and "drifted keys found" in svg
    # the correction is a column behind the line: drawn before it, so equal counts hide neither
    assert svg.index("corrected</title></rect>") < svg.index("<polyline")


@pytest.mark.parametrize(
    ("peak", "marks"),
    [(0, [0, 1]), (1, [0, 1]), (4, [0, 1, 2, 3, 4]), (6, [0, 2, 4, 6]), (23, [0, 5, 10, 15, 20, 25]),
     (130, [0, 50, 100, 150]), (1957, [0, 500, 1000, 1500, 2000])],
)  # fmt: skip
def test_axis_ticks(peak: int, marks: list[int]) -> None:
    assert chart.ticks(peak) == marks


# -- the cost report ---------------------------------------------------------------------------

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "cost"


def test_cost_page_has_human_headers_and_right_aligned_figures(tmp_path: Path) -> None:
    out = tmp_path / "cogs"
    run("cost", "--sales", str(EXAMPLES / "sales.csv"), "--lots", str(EXAMPLES / "lots.csv"), "--out", str(out),
        "--report")  # fmt: skip
    html = (out / "report.html").read_text()
    headers = re.findall(r'<th class="([^"]*)">([^<]*)</th>', html)
    assert ("num", "Cost of goods sold") in headers and ("num", "Quantity") in headers
    assert ("num", "Value left") in headers and ("", "What to do") in headers and ("", "Lots used") in headers
    assert not {"remaining_value", "uncosted_quantity", "sale_id", "raw_value"} & {text for _, text in headers}
    assert '<td class="num">1,200</td>' in html and '<td class="num">490.00</td>' in html
    assert '<td class="num">0.45</td>' in html and '<td class="high">high</td>' in html
