"""Cost results for people: a terminal summary (Rich) and a self-contained HTML report (Jinja2)."""

from __future__ import annotations

from decimal import Decimal
from importlib import resources
from typing import Any, NamedTuple

import jinja2
import polars as pl
from rich import box
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from trueup.cost.frames import cogs_frame, lots_frame, quarantine_frame
from trueup.cost.result import CostResult
from trueup.cost.store import StoreResult, TableChanges
from trueup.report.format import CELL_LIMIT, NONE, Money, literal, money, number, short
from trueup.schema import Document, record

TableEntry = record(TableChanges, "StoredTableEntry", changed=int)


class StoreDocument(Document):
    """What `cost --write` stored (or, in a dry run, would store): the run and each table's counts."""

    applied: bool
    run_id: int | None
    changed: int
    tables: list[TableEntry]  # type: ignore[valid-type]


SHOWN_FINDINGS = 20
HTML_ROWS = 200
MESSAGE_LIMIT = 400  # characters of a finding's message or action shown (a message quotes the input)
_SEVERITY_STYLE = {"critical": "bold white on red", "high": "bold red", "medium": "yellow", "low": "cyan"}


def print_summary(result: CostResult, console: Console, *, shown: int = SHOWN_FINDINGS) -> None:
    console.print(
        Panel(
            Group(*_figures(result), *_findings(result, shown)),
            title=Text("cost", style="bold"),
            title_align="left",
            border_style="red" if result.exit_code else "green",
        )
    )
    console.print(verdict(result))


def figure_rows(result: CostResult) -> list[tuple[str, str]]:
    """The run's headline figures as (label, text) pairs."""
    s = result.summary
    rows = [
        ("method", method_name(s.method)),
        ("SKUs processed", f"{number(s.processed)} of {number(s.skus)}"),
        ("SKUs quarantined", number(s.quarantined)),
        ("sale lines costed", number(s.sale_lines)),
        ("units sold", number(s.units_sold)),
        ("units returned", number(s.units_returned)),
        ("cost of goods sold", money(s.cogs, EXACT)),
        ("ending inventory", f"{number(s.ending_units)} units, value {money(s.ending_value, EXACT)}"),
    ]
    if s.uncosted_units:
        rows.insert(6, ("units left uncosted", number(s.uncosted_units)))
    return rows


def method_name(method: str) -> str:
    return "moving average" if method == "average" else method.upper()


def _figures(result: CostResult) -> list[Table]:
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    for label, value in figure_rows(result):
        table.add_row(label, value)
    return [table]


def _findings(result: CostResult, shown: int) -> list[Table | Text]:
    if not result.findings:
        return []
    title = (
        "Findings" if len(result.findings) <= shown else f"Findings (first {shown} of {number(len(result.findings))})"
    )
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    for column in ("SKU", "severity", "category", "what", "do"):
        table.add_column(column, overflow="fold")
    for finding in result.findings[:shown]:
        table.add_row(
            literal(short(finding.sku or NONE)),
            Text(finding.severity, style=_SEVERITY_STYLE[finding.severity]),
            finding.category,
            literal(short(finding.message, MESSAGE_LIMIT)),
            literal(short(finding.action, MESSAGE_LIMIT)),
        )
    return [table]


def verdict(result: CostResult) -> Text:
    s = result.summary
    if s.stopped:
        return Text("A critical finding stopped the run: nothing was costed.", style="bold red")
    if result.exit_code:
        left_out = sum(1 for f in result.findings if f.sku is None and f.quarantines)
        rows = f" and {number(left_out)} unreadable row(s) left out" if left_out else ""
        return Text(
            f"{number(s.quarantined)} SKU(s) quarantined{rows}; the other {number(s.processed)} were costed.",
            style="bold red",
        )
    return Text(f"All {number(s.skus)} SKU(s) costed.", style="bold green")


_ENVIRONMENT = jinja2.Environment(autoescape=True, keep_trailing_newline=True)
_TEMPLATE = _ENVIRONMENT.from_string(
    resources.files("trueup.report").joinpath("cost.html.j2").read_text(encoding="utf-8")
)


def render_html(result: CostResult) -> str:
    """One self-contained page: figures, every finding, and the first rows of each output."""
    s = result.summary
    return _TEMPLATE.render(
        s=s,
        method=method_name(s.method),
        verdict=verdict(result).plain,
        exit_code=result.exit_code,
        figures=figure_rows(result),
        findings=shown_table(
            f"Findings ({number(len(result.findings))})", quarantine_frame(result), None, cell_limit=MESSAGE_LIMIT
        ),
        tables=[
            shown_table("Rows not costed (as written beside as read)", result.held),
            shown_table("Cost of goods sold per sale line", cogs_frame(result)),
            shown_table("Lots remaining", lots_frame(result)),
        ],
    )


class Cell(NamedTuple):
    text: str
    kind: str = ""  # "num" (right-aligned figure), "raw" (a value as written in the input) or ""


class Shown(NamedTuple):
    """A table for people: human headers, formatted cells, and how many rows there were in all."""

    title: str
    headers: list[Cell]
    rows: list[list[Cell]]
    total: int


# Output field -> header a reader understands. `x_raw` (held rows) is "<header of x> as written".
HEADERS = {
    "input": "Export", "source": "Where", "sale_id": "Sale", "id": "Id", "sku": "SKU", "date": "Date",
    "quantity": "Quantity", "cogs": "Cost of goods sold", "uncosted_quantity": "Units not costed",
    "lots": "Lots used", "lot_id": "Lot", "received": "Received", "remaining_quantity": "Units left",
    "unit_cost": "Unit cost", "remaining_value": "Value left", "status": "Status", "category": "Problem",
    "severity": "Severity", "message": "What happened", "action": "What to do", "column": "Column",
    "raw_value": "Value as written",
}  # fmt: skip
MONEY = frozenset({"cogs", "unit_cost", "remaining_value"})
FIGURES = MONEY | {"quantity", "uncosted_quantity", "remaining_quantity"}  # right-aligned, even as text (held rows)
EXACT = Money(decimals=None)  # cost figures already share one scale per column: show every decimal


def header(field: str) -> str:
    if field.endswith("_raw"):
        return f"{header(field.removesuffix('_raw'))} as written"
    return HEADERS.get(field, field.replace("_", " ").capitalize())


def shown_table(
    title: str, frame: pl.DataFrame, limit: int | None = HTML_ROWS, *, cell_limit: int = CELL_LIMIT
) -> Shown:
    """`frame` for people: numbers right-aligned with separators, money exact, NULL as nothing, long text shortened."""
    numeric = {name for name, dtype in frame.schema.items() if dtype.is_numeric() or name in FIGURES}
    kinds = {name: "num" if name in numeric else "raw" if name.endswith("_raw") else "" for name in frame.columns}
    rows = [
        [
            Cell(_cell_text(name, value, cell_limit), value if name == "severity" else kinds[name])
            for name, value in row.items()
        ]
        for row in (frame if limit is None else frame.head(limit)).iter_rows(named=True)
    ]  # a severity cell's kind is the severity itself: the page colours it
    return Shown(title, [Cell(header(name), kinds[name]) for name in frame.columns], rows, frame.height)


def _cell_text(field: str, value: Any, limit: int = CELL_LIMIT) -> str:
    if not isinstance(value, Decimal | int) or isinstance(value, bool):
        return "" if value is None else short(str(value), limit)  # text (held rows keep what was read) and dates
    return money(value, EXACT) if field in MONEY else number(value)


def print_store(stored: StoreResult, console: Console) -> None:
    """What --write stored (or, in a dry run, would store) in the database."""
    if not stored.changed:
        console.print("The database already holds these figures: nothing to write.", highlight=False)
        return
    verb = "wrote" if stored.applied else "would write"
    for t in stored.tables:
        console.print(
            literal(
                f"{t.table}: {verb} {t.inserted} new row(s), {t.replaced} replaced, {t.removed} removed "
                f"({t.unchanged} unchanged)"
            )
        )
    if stored.applied:
        console.print(f"Run {stored.run_id}; undo with: trueup undo {stored.run_id}", highlight=False)
    elif stored.changed:
        console.print("Dry run: nothing was written. Add --apply to write.", highlight=False)


def store_dict(stored: StoreResult) -> StoreDocument:
    return {
        "applied": stored.applied,
        "run_id": stored.run_id,
        "changed": stored.changed,
        "tables": [t._asdict() | {"changed": t.changed} for t in stored.tables],
    }
