"""Check results for people at a terminal: one panel of tables per rule, then the custom checks."""

from __future__ import annotations

from collections.abc import Sequence

from rich import box
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from trueup.reconcile.check import CheckReport
from trueup.reconcile.checks import CheckResult
from trueup.reconcile.drift import Finding, RuleResult
from trueup.report.format import cell, key_text, number, short

_SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}


def print_check(report: CheckReport, console: Console) -> None:
    for result in report.rules:
        console.print(rule_panel(result))
    if report.checks:
        console.print(checks_table(report.checks))
    console.print(verdict(report))


def rule_panel(result: RuleResult) -> Panel:
    parts: list[Table | Text] = [summary_line(result)]
    if result.worst:
        parts.append(worst_table(result))
    if result.groups:
        parts.append(groups_table(result))
    if result.findings:
        parts.append(findings_table(result.findings))
    style = "green" if result.clean else "red"
    return Panel(Group(*parts), title=f"[bold]{result.name}[/]", title_align="left", border_style=style)


def summary_line(result: RuleResult) -> Text:
    text = Text()
    text.append(f"{number(result.items)} items checked, ")
    text.append(f"{number(result.drifted)} drifted", style="bold red" if result.drifted else "bold green")
    text.append(f", total |drift| {number(result.abs_drift)}")
    if result.within_tolerance:
        text.append(f", {number(result.within_tolerance)} within tolerance")
    if result.value_impact is not None:
        text.append(
            f", value impact {number(result.value_impact, signed=True)} (|value| {number(result.abs_value_impact)})"
        )
    return text


def worst_table(result: RuleResult) -> Table:
    title = (
        "Worst drift"
        if result.drifted <= len(result.worst)
        else f"Worst {len(result.worst)} of {number(result.drifted)}"
    )
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    for column in result.key_columns:
        table.add_column(column)
    table.add_column("recorded", justify="right")
    table.add_column("expected", justify="right")
    table.add_column("delta", justify="right")
    with_value = any(d.unit_value is not None for d in result.worst)
    if with_value:
        table.add_column("value", justify="right")
    for drift in result.worst:
        cells = [cell(k) for k in drift.key]
        recorded = "(no row)" if drift.missing else number(drift.recorded)
        cells += [recorded, number(drift.expected), number(drift.delta, signed=True)]
        if with_value:
            cells.append(number(drift.value, signed=True))
        table.add_row(*cells)
    return table


def groups_table(result: RuleResult) -> Table:
    table = Table(title="Drift by group", title_justify="left", box=box.SIMPLE_HEAD)
    for column in ("group", "drifted", "|drift|", "value impact"):
        table.add_column(column, justify="left" if column == "group" else "right")
    for group in result.groups:
        table.add_row(
            cell(group.group),
            number(group.drifted),
            number(group.abs_drift),
            number(group.value_impact, signed=True),
        )
    return table


def findings_table(findings: Sequence[Finding]) -> Table:
    table = Table(title="Findings", title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("kind")
    table.add_column("severity")
    table.add_column("what", overflow="fold")
    table.add_column("e.g. keys", overflow="fold")
    for finding in findings:
        keys = "; ".join(key_text(s["key"]) for s in finding.sample)
        table.add_row(
            finding.kind, Text(finding.severity, style=_SEVERITY_STYLE[finding.severity]), short(finding.message), keys
        )
    return table


def checks_table(checks: tuple[CheckResult, ...]) -> Table:
    table = Table(title="Custom checks", title_justify="left", box=box.SIMPLE_HEAD)
    for column in ("check", "severity", "failing rows", "e.g."):
        table.add_column(column, justify="right" if column == "failing rows" else "left", overflow="fold")
    for check in checks:
        example = ", ".join(f"{k}={cell(v)}" for k, v in check.sample[0].items()) if check.sample else ""
        status = Text(check.severity, style=_SEVERITY_STYLE[check.severity] if check.failing else "green")
        table.add_row(check.name, status, number(check.failing), example)
    return table


def verdict(report: CheckReport) -> Text:
    drifted_rules = [r for r in report.rules if r.drifted]
    failing = [c for c in report.checks if c.fails_run]
    if not drifted_rules and not failing:
        return Text(f"All {len(report.rules)} rule(s) add up.", style="bold green")
    parts = []
    if drifted_rules:
        keys = sum(r.drifted for r in drifted_rules)
        parts.append(f"{len(drifted_rules)} of {len(report.rules)} rule(s) drifted ({number(keys)} keys)")
    if failing:
        parts.append(f"{len(failing)} error check(s) failing")
    return Text("; ".join(parts) + ".", style="bold red")
