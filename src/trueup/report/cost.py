"""Cost results for people: a terminal summary (Rich) and a self-contained HTML report (Jinja2)."""

from __future__ import annotations

from decimal import Decimal
from importlib import resources
from typing import Any

import jinja2
from rich import box
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from trueup.cost.frames import cogs_frame, lots_frame, quarantine_frame
from trueup.cost.result import CostResult
from trueup.cost.store import StoreResult
from trueup.report.format import number, short

SHOWN_FINDINGS = 20
HTML_ROWS = 200
_SEVERITY_STYLE = {"critical": "bold white on red", "high": "bold red", "medium": "yellow", "low": "cyan"}


def print_summary(result: CostResult, console: Console, *, shown: int = SHOWN_FINDINGS) -> None:
    console.print(
        Panel(
            Group(*_figures(result), *_findings(result, shown)),
            title="[bold]cost[/]",
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
        ("cost of goods sold", money(s.cogs)),
        ("ending inventory", f"{number(s.ending_units)} units, value {money(s.ending_value)}"),
    ]
    if s.uncosted_units:
        rows.insert(6, ("units left uncosted", number(s.uncosted_units)))
    return rows


def money(value: Decimal) -> str:
    """Exact, with thousands separators and every decimal kept: 1234.50 -> '1,234.50'."""
    return f"{value:,f}"


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
            short(finding.sku or "—"),
            Text(finding.severity, style=_SEVERITY_STYLE[finding.severity]),
            finding.category,
            short(finding.message, 400),
            short(finding.action, 400),
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
_ENVIRONMENT.filters["short"] = short
_TEMPLATE = _ENVIRONMENT.from_string(
    resources.files("trueup.report").joinpath("cost.html.j2").read_text(encoding="utf-8")
)


def render_html(result: CostResult) -> str:
    """One self-contained page: figures, every finding, and the first rows of each output."""
    s = result.summary
    tables: list[tuple[str, list[dict[str, Any]], int]] = []
    for title, frame in (
        ("Rows not costed (raw beside parsed)", result.held),
        ("Cost of goods sold per sale line", cogs_frame(result)),
        ("Lots remaining", lots_frame(result)),
    ):
        tables.append((title, frame.head(HTML_ROWS).to_dicts(), frame.height))
    quarantine = quarantine_frame(result)
    return _TEMPLATE.render(
        s=s,
        method=method_name(s.method),
        verdict=verdict(result).plain,
        exit_code=result.exit_code,
        figures=figure_rows(result),
        findings=quarantine.to_dicts(),
        finding_columns=quarantine.columns,
        tables=tables,
    )


def print_store(stored: StoreResult, console: Console) -> None:
    """What --write stored (or, in a dry run, would store) in the database."""
    if not stored.changed:
        console.print("The database already holds these figures: nothing to write.", highlight=False)
        return
    verb = "wrote" if stored.applied else "would write"
    for t in stored.tables:
        console.print(
            f"{t.table}: {verb} {t.inserted} new row(s), {t.replaced} replaced, {t.removed} removed "
            f"({t.unchanged} unchanged)",
            highlight=False,
        )
    if stored.applied:
        console.print(f"Run {stored.run_id}; undo with: trueup undo {stored.run_id}", highlight=False)
    elif stored.changed:
        console.print("Dry run: nothing was written. Add --apply to write.", highlight=False)


def store_dict(stored: StoreResult) -> dict[str, Any]:
    return {
        "applied": stored.applied,
        "run_id": stored.run_id,
        "changed": stored.changed,
        "tables": [t._asdict() | {"changed": t.changed} for t in stored.tables],
    }
