"""`trueup guard plan|install|remove|status`: triggers generated from the rules."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer

from trueup.cli import common
from trueup.cli.app import Group, app
from trueup.cli.options import ConfigOption, DatabaseOption, Output, OutputFormatOption, TriggeredByOption, YesOption

guard_app = typer.Typer(
    cls=Group, no_args_is_help=True, help="Stop drift at its source: triggers generated from a rule."
)
app.add_typer(guard_app, name="guard")

RuleName = Annotated[str, typer.Option("--rule", "-r", metavar="NAME", help="The rule to guard.")]
ModeOption = Annotated[
    str,
    typer.Option(
        "--mode",
        "-m",
        metavar="MODE",
        help="capture (queue touched keys); alarm (record violations at commit), enforce (fail them): PostgreSQL.",
    ),
]


@guard_app.command("plan")
@common.handles_errors
def plan(
    rule: RuleName, mode: ModeOption = "capture", config: ConfigOption = None, database: DatabaseOption = None
) -> None:
    """Print the exact DDL `install` would run; nothing is written.

    Example: trueup guard plan --rule stock --mode capture
    """
    from trueup import guard

    cfg = common.load_config_for(config, database)
    with common.session(cfg, database) as connection:
        found = guard.plan(connection, cfg, rule, mode)
    for trigger in found:
        for statement in trigger.create:
            typer.echo(f"{statement};")


@guard_app.command("install")
@common.handles_errors
def install(
    rule: RuleName,
    mode: ModeOption = "capture",
    config: ConfigOption = None,
    database: DatabaseOption = None,
    yes: YesOption = False,
    triggered_by: TriggeredByOption = "cli",
) -> None:
    """Install the rule's triggers as a run (undoable); again with the same rule, a no-op.

    Example: trueup guard install --rule stock --mode capture --yes
    """
    from trueup import guard

    cfg = common.load_config_for(config, database)
    with common.session(cfg, database) as connection:
        done = guard.install(
            connection, cfg, rule, mode, yes=yes, confirm=common.confirmer(), triggered_by=triggered_by
        )
    if done.run_id is None:
        typer.echo(f"rule {rule}: guard {mode} {done.message}")
        return
    replaced = f", replacing run {done.replaced}" if done.replaced else ""
    typer.echo(f"rule {rule}: guard {mode} installed: {done.triggers} trigger(s) as run {done.run_id}{replaced}")


@guard_app.command("remove")
@common.handles_errors
def remove(
    rule: RuleName,
    config: ConfigOption = None,
    database: DatabaseOption = None,
    yes: YesOption = False,
    triggered_by: TriggeredByOption = "cli",
) -> None:
    """Drop exactly the triggers the rule's guard installed (an undo of its run).

    Example: trueup guard remove --rule stock --yes
    """
    from trueup import guard

    cfg = common.load_config_for(config, database)
    with common.session(cfg, database) as connection:
        done = guard.remove(connection, cfg, rule, yes=yes, confirm=common.confirmer(), triggered_by=triggered_by)
    dropped = f"{done.triggers} trigger(s) dropped by run {done.run_id}"
    typer.echo(f"rule {rule}: guard {done.mode} removed: {dropped} (undid run {done.replaced})")


@guard_app.command("status")
@common.handles_errors
def status(
    config: ConfigOption = None, database: DatabaseOption = None, fmt: OutputFormatOption = Output.table
) -> None:
    """List the installed guards: rule, mode, tables, the version and config that made them, and whether
    the rule has changed since (then install again replaces it).

    Example: trueup guard status --format json
    """
    from trueup import guard
    from trueup.report.guard import guard_row

    cfg = common.load_config_for(config, database)
    with common.session(cfg, database) as connection:
        rows = [guard_row(g, guard.changed_since(connection, cfg, g)) for g in guard.status(connection)]
    _listed(fmt, "guards", rows, "no guards installed", _guard_line)


@guard_app.command("violations")
@common.handles_errors
def violations(
    rule: Annotated[str | None, typer.Option("--rule", "-r", metavar="NAME", help="Only this rule's.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="The most recent N.")] = 100,
    config: ConfigOption = None,
    database: DatabaseOption = None,
    fmt: OutputFormatOption = Output.table,
) -> None:
    """List what alarm guards found at commit, newest first: rule, key, recorded and expected figures,
    and who committed it (application_name, database user, client address, time, transaction id).

    Example: trueup guard violations --rule stock --format json
    """
    from trueup import guard

    cfg = common.load_config_for(config, database)
    with common.session(cfg, database) as connection:
        rows = guard.violations(connection, rule, limit)
    _listed(fmt, "violations", rows, "no violations recorded", _violation_line)


def _listed(fmt: Output, name: str, rows: list[dict[str, Any]], empty: str, line: Callable[..., str]) -> None:
    """`{name: rows}` as JSON, or one line per row (`empty` when there are none)."""
    from trueup.report.format import to_json

    if fmt is Output.json:
        typer.echo(to_json({name: rows}))
        return
    if not rows:
        typer.echo(empty)
    for row in rows:
        typer.echo(line(row))


def _guard_line(row: dict[str, Any]) -> str:
    state = "" if row["complete"] else " (incomplete: install again or remove)"
    return (
        f"{row['rule']}: {row['mode']} on {', '.join(row['tables'])}; run {row['run_id']}, "
        f"trueup {row['trueup_version']}, config {(row['config_sha256'] or '-')[:12]}, "
        f"rule changed since: {row['changed_since']}{state}"
    )


def _violation_line(row: dict[str, Any]) -> str:
    from trueup.report.format import value_text

    return (
        f"{row['at']} {row['rule']} key {row['key']}: recorded {value_text(row['recorded'])}, "
        f"expected {value_text(row['expected'])}; by {row['user']} "
        f"({row['application_name'] or '-'}, {row['client_addr'] or 'local'}), txid {row['txid']}"
    )
