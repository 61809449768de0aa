"""`trueup runs` and `trueup runs show`: the audit trail."""

from __future__ import annotations

from typing import Annotated

import typer

from trueup.cli import common
from trueup.cli.app import Group, app
from trueup.cli.options import ConfigOption, DatabaseOption, Output, OutputFormatOption

runs_app = typer.Typer(cls=Group, no_args_is_help=False)
app.add_typer(runs_app, name="runs")

HowManyOption = Annotated[int, typer.Option("--limit", "-n", min=1, metavar="N", help="Show at most N.")]


@runs_app.callback(invoke_without_command=True)
@common.handles_errors
def runs(
    context: typer.Context,
    config: ConfigOption = None,
    database: DatabaseOption = None,
    limit: HowManyOption = 20,
    fmt: OutputFormatOption = Output.table,
) -> None:
    """List the latest applies and undos recorded in the database, newest first.

    Example: trueup runs --limit 5 --format json
    """
    if context.invoked_subcommand is not None:
        return
    from trueup.reconcile import audit
    from trueup.report.format import to_json
    from trueup.report.repair import print_runs, runs_document

    cfg = common.load_config_for(config, database)
    with common.session(cfg, database) as connection:
        found = audit.list_runs(connection, limit)
    if fmt is Output.json:
        typer.echo(to_json(runs_document(found)))
    else:
        print_runs(found, common.stdout())


@runs_app.command("show")
@common.handles_errors
def show(
    run_id: Annotated[int, typer.Argument(metavar="RUN", help="The run's id.")],
    config: ConfigOption = None,
    database: DatabaseOption = None,
    limit: Annotated[
        int | None, typer.Option("--limit", "-n", min=1, metavar="N", help="Show at most N changes.")
    ] = None,
    fmt: OutputFormatOption = Output.table,
) -> None:
    """Show one run: who, when, what triggered it, and every row it changed (before and after).

    Example: trueup runs show 12 --format json
    """
    from trueup.reconcile import audit
    from trueup.report.format import to_json
    from trueup.report.repair import print_run, run_document

    cfg = common.load_config_for(config, database)
    with common.session(cfg, database) as connection:
        run = audit.get_run(connection, run_id)
        changes = audit.run_changes(connection, run_id, limit)
    if fmt is Output.json:
        typer.echo(to_json(run_document(run, changes)))
    else:
        print_run(run, changes, common.stdout(), shown=limit or 20)
