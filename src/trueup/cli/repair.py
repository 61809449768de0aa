"""`trueup plan`, `apply` and `undo`."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from trueup.cli import common
from trueup.cli.app import app
from trueup.cli.options import (
    BackupDirOption,
    ConfigOption,
    DatabaseOption,
    KeyOption,
    LockTimeoutOption,
    Output,
    OutputFormatOption,
    QuietOption,
    RuleOption,
    TriggeredByOption,
    WhereOption,
    YesOption,
)
from trueup.errors import UsageError
from trueup.paths import DEFAULT_BACKUP_DIRECTORY

if TYPE_CHECKING:
    from trueup.reconcile.query import Scope

WorstOption = Annotated[
    int | None, typer.Option("--limit", "-n", min=1, metavar="N", help="Only the worst N drifted keys per rule.")
]
IncludeFlaggedOption = Annotated[
    bool,
    typer.Option(
        "--include-flagged", help="Correct keys with an error-severity finding (e.g. a negative expected figure) too."
    ),
]


def scope_of(keys: list[str] | None, where: str | None) -> Scope:
    from trueup.reconcile.query import Scope

    return Scope(keys=tuple(tuple(k.split(",")) for k in keys or ()), where=where)


@app.command()
@common.handles_errors
def plan(
    config: ConfigOption = None,
    database: DatabaseOption = None,
    rule: RuleOption = None,
    key: KeyOption = None,
    where: WhereOption = None,
    limit: WorstOption = None,
    out: Annotated[Path | None, typer.Option("--out", metavar="FILE", help="Save the plan for `apply --plan`.")] = None,
    include_flagged: IncludeFlaggedOption = False,
    fmt: OutputFormatOption = Output.table,
) -> None:
    """Show exactly what a repair would change, per key (the dry run); exit 1 if anything would or was left out.

    Example: trueup plan --rule storefront --key 1,10 --out plan.json
    """
    from trueup.config import load_config
    from trueup.db import redact
    from trueup.reconcile.plan import make_plan, plan_document, save_plan
    from trueup.report.format import to_json
    from trueup.report.repair import print_plan

    cfg = load_config(config)
    with common.session(cfg, database) as connection:
        url = redact(connection.engine.url)
        scope = scope_of(key, where)
        made = make_plan(
            connection, cfg, database=url, rules=rule, scope=scope, limit=limit, include_flagged=include_flagged
        )
    if out:
        save_plan(made, out)
    if fmt is Output.json:
        typer.echo(to_json(plan_document(made)))
    else:
        print_plan(made, common.stdout())
        if out:
            common.note(f"Saved to {out}; apply it with: trueup apply --plan {out}")
    raise typer.Exit(made.exit_code)


@app.command()
@common.handles_errors
def apply(
    config: ConfigOption = None,
    database: DatabaseOption = None,
    rule: RuleOption = None,
    key: KeyOption = None,
    where: WhereOption = None,
    limit: WorstOption = None,
    plan_file: Annotated[
        Path | None, typer.Option("--plan", metavar="FILE", help="Apply this saved plan instead of planning afresh.")
    ] = None,
    no_backup: Annotated[
        bool, typer.Option("--no-backup", help="Skip the file backup (row pre-images are always kept).")
    ] = False,
    backup_dir: BackupDirOption = DEFAULT_BACKUP_DIRECTORY,
    max_changes: Annotated[
        int | None, typer.Option(metavar="N", min=0, help="Refuse plans writing more rows than this.")
    ] = None,
    max_abs_delta: Annotated[
        Decimal | None, typer.Option(metavar="X", help="Refuse plans correcting any row by more than this.")
    ] = None,
    include_flagged: IncludeFlaggedOption = False,
    chunk_size: Annotated[
        int | None,
        typer.Option(metavar="N", min=1, help="Write key-ordered chunks of N keys, each its own transaction."),
    ] = None,
    resume: Annotated[
        int | None, typer.Option(metavar="RUN", help="Finish the chunks a killed chunked run left uncommitted.")
    ] = None,
    yes: YesOption = False,
    fmt: OutputFormatOption = Output.table,
    triggered_by: TriggeredByOption = "cli",
    lock_timeout: LockTimeoutOption = 30,
    quiet: QuietOption = False,
) -> None:
    """Back up, correct every drifted key in one transaction (or resumable chunks) with an audit trail, verify.

    Example: trueup apply --rule diapers --max-changes 500
    """
    from trueup.config import load_config
    from trueup.reconcile.apply import apply as apply_repair
    from trueup.reconcile.apply import resume as resume_repair
    from trueup.reconcile.guard import Limits
    from trueup.reconcile.plan import load_plan
    from trueup.report.format import to_json
    from trueup.report.repair import apply_document, print_apply

    cfg = load_config(config)
    saved = load_plan(plan_file) if plan_file else None
    if saved and (rule or key or where or limit or include_flagged):
        raise UsageError(
            "--plan applies a saved plan as it is; --rule, --key, --where, --limit and --include-flagged make a new one"
        )
    if resume is not None and (saved or rule or key or where or limit or include_flagged or chunk_size):
        raise UsageError(
            "--resume finishes a run as it was started: it takes no --plan, --rule, --key, --where, "
            "--limit, --include-flagged or --chunk-size"
        )
    with common.session(cfg, database) as connection, common.Activity(common.interactive(quiet)) as activity:
        if resume is not None:
            result = resume_repair(
                connection,
                cfg,
                connection.engine.url,
                resume,
                yes=yes,
                confirm=common.confirmer(),
                triggered_by=triggered_by,
                lock_timeout=lock_timeout,
                phase=activity.phase,
                progress=activity.chunks,
            )
        else:
            result = apply_repair(
                connection,
                cfg,
                connection.engine.url,
                plan=saved,
                rules=rule,
                scope=scope_of(key, where),
                limit=limit,
                limits=Limits(max_changes, max_abs_delta),
                include_flagged=include_flagged,
                backup_dir=None if no_backup else backup_dir,
                yes=yes,
                confirm=common.confirmer(),
                triggered_by=triggered_by,
                lock_timeout=lock_timeout,
                phase=activity.phase,
                chunk_size=chunk_size,
                progress=activity.chunks,
            )
    for warning in result.warnings:
        common.warn(warning)
    if fmt is Output.json:
        typer.echo(to_json(apply_document(result)))
    else:
        if result.backup and not quiet:
            common.note(f"Backed up to {result.backup}")
        print_apply(result, common.stdout())
    raise typer.Exit(result.exit_code)


@app.command()
@common.handles_errors
def undo(
    run_id: Annotated[int, typer.Argument(metavar="RUN", help="The run to undo (trueup runs lists them).")],
    config: ConfigOption = None,
    database: DatabaseOption = None,
    skip_conflicts: Annotated[
        bool, typer.Option("--skip-conflicts", help="Restore the other rows, leaving rows changed since alone.")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Restore rows changed since the run too.")] = False,
    yes: YesOption = False,
    fmt: OutputFormatOption = Output.table,
    triggered_by: TriggeredByOption = "cli",
    lock_timeout: LockTimeoutOption = 30,
) -> None:
    """Put back exactly what a run changed, in one transaction; refused if rows changed since.

    Example: trueup undo 12
    """
    from trueup.reconcile.guard import confirm_writes
    from trueup.reconcile.undo import undo_run
    from trueup.report.format import to_json
    from trueup.report.repair import print_undo, undo_document

    cfg = common.load_config_for(config, database)
    with common.session(cfg, database) as connection:
        pattern = cfg.database.production_pattern
        confirm_writes(connection.engine.url, pattern, f"undo run {run_id}", yes=yes, confirm=common.confirmer())
        result = undo_run(
            connection,
            run_id,
            force=force,
            skip_conflicts=skip_conflicts,
            triggered_by=triggered_by,
            lock_timeout=lock_timeout,
        )
    if fmt is Output.json:
        typer.echo(to_json(undo_document(result)))
    else:
        print_undo(result, common.stdout())
    raise typer.Exit(result.exit_code)
