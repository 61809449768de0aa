"""A check's results in words a manager reads: the same sentences and figures in every report.

The terminal table, Markdown and HTML renderers (and the service's dashboard)
all say a rule's outcome through these functions, so the words match:

    205 items checked, 130 drifted, 1,957 units off in total; the discrepancies
    are worth 683.60 EUR, and correcting them lowers the stock's book value by 683.60 EUR.

`delta` = expected − recorded, so a negative net value means the cached
figures overstate the stock and correcting them lowers its value.
"""

from __future__ import annotations

from typing import NamedTuple

from trueup.reconcile.checks import CheckResult
from trueup.reconcile.drift import RuleResult
from trueup.report.format import PLAIN, Money, cell, money, number

PASS, FAIL = "✓", "✗"
HOW_TO_READ = (
    "recorded is the stock figure the system shows; expected is what its records add up to; "
    "delta = expected − recorded is the correction a repair would make (negative: the system shows too much)."
)


class Figure(NamedTuple):
    """One headline figure: the value as shown, what it means, and whether it is bad news."""

    text: str
    label: str
    bad: bool = False


def rule_figures(result: RuleResult, style: Money = PLAIN) -> list[Figure]:
    figures = [
        Figure(number(result.items), "items checked"),
        Figure(number(result.drifted), "drifted", bool(result.drifted)),
        Figure(number(result.abs_drift), "units off in total", bool(result.drifted)),
    ]
    if result.within_tolerance:
        figures.append(Figure(number(result.within_tolerance), "within tolerance"))
    if result.abs_value_impact is not None:
        figures.append(Figure(money(result.abs_value_impact, style), "value of the discrepancies"))
        figures.append(Figure(money(result.value_impact, style, signed=True), "change in stock value once corrected"))
    return figures


def rule_sentence(result: RuleResult, style: Money = PLAIN) -> str:
    """The rule's outcome in one sentence."""
    tolerated = f", {number(result.within_tolerance)} within tolerance" if result.within_tolerance else ""
    if not result.drifted:
        return f"{number(result.items)} items checked, none drifted{tolerated}."
    text = (
        f"{number(result.items)} items checked, {number(result.drifted)} drifted, "
        f"{number(result.abs_drift)} units off in total{tolerated}"
    )
    if result.value_impact is None or result.abs_value_impact is None:
        return text + "."
    text += f"; the discrepancies are worth {money(result.abs_value_impact, style)}, and correcting them "
    if result.value_impact == 0:
        return text + "leaves the stock's book value unchanged."
    direction = "raises" if result.value_impact > 0 else "lowers"
    return text + f"{direction} the stock's book value by {money(abs(result.value_impact), style)}."


def rule_mark(result: RuleResult) -> str:
    return PASS if result.clean else FAIL


def check_outcome(check: CheckResult) -> str:
    """`✓ holds`, or `✗ 3 rows break it`."""
    if not check.failing:
        return f"{PASS} holds"
    return f"{FAIL} {number(check.failing)} " + ("row breaks it" if check.failing == 1 else "rows break it")


def sample_text(row: dict[str, object]) -> str:
    """A custom check's first failing row: `product_code=C-3, packs=0` (NULL for NULL, long values shortened)."""
    return ", ".join(f"{column}={cell(value)}" for column, value in row.items())
