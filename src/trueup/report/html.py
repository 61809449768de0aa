"""Check results as one self-contained HTML page: figures, charts (inline SVG), tables."""

from __future__ import annotations

from datetime import datetime

from jinja2 import Environment, PackageLoader, select_autoescape

from trueup import __version__
from trueup.reconcile.check import CheckReport
from trueup.reconcile.drift import RuleResult
from trueup.reconcile.history import Round
from trueup.report import chart
from trueup.report.format import cell, key_text, number, short
from trueup.report.table import verdict

_TEMPLATES = Environment(
    loader=PackageLoader("trueup.report", "templates"),
    autoescape=select_autoescape(["html", "j2"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def render_check(report: CheckReport, rounds: dict[str, list[Round]] | None = None) -> str:
    """The page; `rounds` (per rule, from sync's history) adds a drift-over-time chart."""
    summary = verdict(report)
    return _TEMPLATES.get_template("check.html.j2").render(
        generated=datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        version=__version__,
        verdict=summary.plain,
        verdict_bad=report.exit_code != 0,
        rules=report.rules,
        checks=report.checks,
        charts={rule.name: _charts(rule, (rounds or {}).get(rule.name, [])) for rule in report.rules},
        number=number,
        cell=cell,
        key_text=key_text,
        short=short,
    )


def _charts(rule: RuleResult, rounds: list[Round]) -> dict[str, str]:
    series = [(r.started_at, r.drifted, r.corrected) for r in rounds if r.status != "skipped"]
    return {
        "history": chart.timeline(series, title="Drift over time (sync rounds)"),
        "distribution": chart.columns(rule.distribution, title="Drifted keys by size of delta"),
        "worst": chart.diverging_bars(
            [(key_text(d.key), d.delta) for d in rule.worst[:15]], title="Worst keys (delta = expected − recorded)"
        ),
    }
