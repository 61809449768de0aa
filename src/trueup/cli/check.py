"""`trueup check`."""

from __future__ import annotations

import typer

from trueup.cli import common
from trueup.cli.app import app
from trueup.cli.options import (
    ConfigOption,
    DatabaseOption,
    Format,
    FormatOption,
    LimitOption,
    OutputOption,
    QuietOption,
    RuleOption,
)


@app.command()
@common.handles_errors
def check(
    config: ConfigOption = None,
    database: DatabaseOption = None,
    rule: RuleOption = None,
    fmt: FormatOption = Format.table,
    output: OutputOption = None,
    limit: LimitOption = None,
    quiet: QuietOption = False,
) -> None:
    """Measure drift between each rule's recorded figure and its sources; exit 1 if any drifted.

    Custom [[checks]] run too, unless --rule narrows the run to some rules.

    Example: trueup check --config trueup.toml --format json --output drift.json
    """
    from trueup.config import load_config
    from trueup.reconcile.check import CheckRun
    from trueup.report import keep_for, money_for, write_check

    cfg = load_config(config)
    with common.session(cfg, database) as connection, common.Activity(common.interactive(quiet)) as progress:
        run = CheckRun(
            connection, cfg, rules=rule, keep=keep_for(fmt.value, limit), observer=progress, with_checks=not rule
        )
        with common.output(output) as out:
            report = write_check(run, fmt.value, out, limit, money_for(cfg))
    raise typer.Exit(report.exit_code)
