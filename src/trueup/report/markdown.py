"""Check results as GitHub-flavoured Markdown, for tickets and pull requests."""

from __future__ import annotations

from trueup.reconcile.check import CheckReport
from trueup.reconcile.drift import RuleResult
from trueup.report.format import cell, key_text, number, short
from trueup.report.table import summary_line, verdict


def render_check(report: CheckReport) -> str:
    lines = ["# Drift report", "", f"**{verdict(report).plain}**", ""]
    for rule in report.rules:
        lines += _rule(rule)
    if report.checks:
        lines += ["## Custom checks", "", "| check | severity | failing rows | e.g. |", "| --- | --- | ---: | --- |"]
        for check in report.checks:
            example = ", ".join(f"{k}={v}" for k, v in check.sample[0].items()) if check.sample else ""
            lines.append(f"| {_cell(check.name)} | {check.severity} | {number(check.failing)} | {_cell(example)} |")
        lines.append("")
    return "\n".join(lines)


def _rule(rule: RuleResult) -> list[str]:
    lines = [f"## {rule.name}", "", summary_line(rule).plain, ""]
    if rule.worst:
        with_value = rule.value_impact is not None
        header = [*rule.key_columns, "recorded", "expected", "delta", *(["value"] if with_value else [])]
        lines += [
            "| " + " | ".join(header) + " |",
            "|" + " --- |" * len(rule.key_columns) + " ---: |" * (len(header) - len(rule.key_columns)),
        ]
        for d in rule.worst:
            cells = [_cell(cell(k)) for k in d.key]
            cells += ["(no row)" if d.missing else number(d.recorded), number(d.expected), number(d.delta, signed=True)]
            if with_value:
                cells.append(number(d.value, signed=True))
            lines.append("| " + " | ".join(cells) + " |")
        if rule.drifted > len(rule.worst):
            lines.append(f"\n_…and {number(rule.drifted - len(rule.worst))} more drifted keys._")
        lines.append("")
    if rule.groups:
        lines += ["| group | drifted | \\|drift\\| | value impact |", "| --- | ---: | ---: | ---: |"]
        for g in rule.groups:
            cells = [_cell(cell(g.group)), number(g.drifted), number(g.abs_drift)]
            lines.append("| " + " | ".join([*cells, number(g.value_impact, signed=True)]) + " |")
        lines.append("")
    if rule.findings:
        lines += ["| finding | severity | what | e.g. keys |", "| --- | --- | --- | --- |"]
        for f in rule.findings:
            keys = "; ".join(key_text(s["key"]) for s in f.sample)
            lines.append(f"| {f.kind} | {f.severity} | {_cell(short(f.message))} | {_cell(keys)} |")
        lines.append("")
    return lines


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
