"""Check results as GitHub-flavoured Markdown, for tickets and pull requests."""

from __future__ import annotations

from trueup.reconcile.check import CheckReport
from trueup.reconcile.drift import RuleResult
from trueup.report.format import PLAIN, Money, cell, key_text, money, number, short
from trueup.report.summary import HOW_TO_READ, check_outcome, rule_mark, rule_sentence, sample_text
from trueup.report.table import verdict


def render_check(report: CheckReport, style: Money = PLAIN) -> str:
    lines = ["# Drift report", "", f"**{verdict(report).plain}**", "", f"_{HOW_TO_READ}_", ""]
    for rule in report.rules:
        lines += _rule(rule, style)
    if report.checks:
        lines += ["## Custom checks", "", "| check | severity | result | e.g. |", "| --- | --- | --- | --- |"]
        for check in report.checks:
            example = sample_text(check.sample[0]) if check.sample else ""
            lines.append(f"| {_cell(check.name)} | {check.severity} | {check_outcome(check)} | {_cell(example)} |")
        lines.append("")
    return "\n".join(lines)


def _rule(rule: RuleResult, style: Money) -> list[str]:
    lines = [f"## {rule_mark(rule)} {rule.name}", "", rule_sentence(rule, style), ""]
    if rule.worst:
        with_value = rule.value_impact is not None
        header = [*map(_cell, rule.key_columns), "recorded", "expected", "delta", *(["value"] if with_value else [])]
        lines += [
            "| " + " | ".join(header) + " |",
            "|" + " --- |" * len(rule.key_columns) + " ---: |" * (len(header) - len(rule.key_columns)),
        ]
        for d in rule.worst:
            cells = [_cell(cell(k)) for k in d.key]
            cells += ["(no row)" if d.missing else number(d.recorded), number(d.expected), number(d.delta, signed=True)]
            if with_value:
                cells.append(money(d.value, style, signed=True))
            lines.append("| " + " | ".join(cells) + " |")
        if rule.drifted > len(rule.worst):
            lines.append(f"\n_…and {number(rule.drifted - len(rule.worst))} more drifted keys._")
        lines.append("")
    if rule.groups:
        lines += ["| group | drifted | units off | value |", "| --- | ---: | ---: | ---: |"]
        for g in rule.groups:
            cells = [_cell(cell(g.group)), number(g.drifted), number(g.abs_drift)]
            lines.append("| " + " | ".join([*cells, money(g.value_impact, style, signed=True)]) + " |")
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
