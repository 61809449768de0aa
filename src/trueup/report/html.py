"""Check results as one self-contained HTML page: figures, charts (inline SVG), tables."""

from __future__ import annotations

from datetime import datetime
from functools import partial

from jinja2 import Environment, PackageLoader, select_autoescape

from trueup import __version__
from trueup.reconcile.check import CheckReport
from trueup.reconcile.drift import RuleResult
from trueup.reconcile.history import Round
from trueup.report import chart
from trueup.report.format import PLAIN, Money, cell, key_text, money, number, short
from trueup.report.summary import HOW_TO_READ, check_outcome, rule_figures, rule_mark, sample_text
from trueup.report.table import verdict

_TEMPLATES = Environment(
    loader=PackageLoader("trueup.report", "templates"),
    autoescape=select_autoescape(["html", "j2"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
_TEMPLATES.filters["key_text"] = key_text


def render_check(report: CheckReport, rounds: dict[str, list[Round]] | None = None, style: Money = PLAIN) -> str:
    """The page; `rounds` (per rule, from sync's history) adds a drift-over-time chart."""
    summary = verdict(report)
    return _TEMPLATES.get_template("check.html.j2").render(
        generated=datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        version=__version__,
        verdict=summary.plain,
        verdict_bad=report.exit_code != 0,
        how_to_read=HOW_TO_READ,
        rules=report.rules,
        checks=report.checks,
        charts={rule.name: _charts(rule, (rounds or {}).get(rule.name, [])) for rule in report.rules},
        number=number,
        money=partial(money, style=style),
        cell=cell,
        key_text=key_text,
        short=short,
        figures=partial(rule_figures, style=style),
        mark=rule_mark,
        outcome=check_outcome,
        sample_text=sample_text,
    )


def _charts(rule: RuleResult, rounds: list[Round]) -> dict[str, str]:
    history, history_note = drift_over_time(rounds)
    return {
        "history": history,
        "history_note": history_note,
        "distribution": chart.columns(rule.distribution, title="Drifted keys by size of delta"),
        "worst": chart.diverging_bars(
            [(key_text(d.key), d.delta) for d in rule.worst[:15]], title="Worst keys (delta = expected − recorded)"
        ),
    }


def drift_over_time(rounds: list[Round]) -> tuple[str, str]:
    """The chart of a rule's full rounds, and a note on the rounds it leaves out.

    Only a full round checks every item, so only full rounds' counts compare; incremental and
    hook (keys) rounds checked some items only and are counted in the note instead.
    """
    done = [r for r in rounds if r.status != "skipped"]
    full = [(r.started_at, r.drifted, r.corrected) for r in done if r.kind == "full"]
    partial_rounds = [r for r in done if r.kind != "full"]
    note = ""
    if partial_rounds:
        corrected = sum(r.corrected for r in partial_rounds)
        note = (
            f"Not plotted: {number(len(partial_rounds))} incremental or hook round(s), which checked only some "
            f"items; they corrected {number(corrected)} key(s)."
        )
    title = "Drift over time (full sync rounds)"
    return chart.timeline(full, title=title), note
