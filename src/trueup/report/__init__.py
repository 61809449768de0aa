"""Renderers: check results as a terminal table, JSON, Markdown or a self-contained HTML page.

`write_check()` is the one entry point; JSON is streamed straight from the
database cursor, the other formats render a finished `CheckReport` that holds
only the worst `limit` keys per rule.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TextIO

from trueup.report.format import PLAIN, Money

if TYPE_CHECKING:  # light at import: the command line imports `trueup.report.format` at start-up
    from trueup.config import Config
    from trueup.reconcile.check import CheckReport, CheckRun

FORMATS = ("table", "json", "markdown", "html")
DEFAULT_LIMIT = 20


def money_for(config: Config) -> Money:
    """How `config`'s [report] table asks for money to be shown."""
    return Money(config.report.currency, config.report.money_decimals)


def keep_for(fmt: str, limit: int | None) -> int | None:
    """How many worst drift rows a `CheckRun` must hold for `fmt` (JSON streams, so none)."""
    if fmt == "json":
        return 0
    return DEFAULT_LIMIT if limit is None else limit


def write_check(run: CheckRun, fmt: str, out: TextIO, limit: int | None = None, money: Money = PLAIN) -> CheckReport:
    """Render `run` as `fmt`; `money` says how values are shown (JSON keeps them exact, unrounded)."""
    from rich.console import Console

    from trueup.report import json, table

    if fmt == "json":
        return json.write_check(run, out, limit)
    report = run.report()
    if fmt == "table":
        table.print_check(report, Console(file=out, soft_wrap=False), money)
    else:
        from trueup.reconcile import history
        from trueup.report import html, markdown  # only loaded when asked for

        if fmt == "markdown":
            out.write(markdown.render_check(report, money))
        else:
            rounds = {r.name: history.recent_rounds(run.connection, r.name) for r in report.rules}
            out.write(html.render_check(report, rounds, money))
    return report
