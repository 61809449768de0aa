"""`trueup backup` (make, list, verify) and `trueup restore`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from trueup.cli import common
from trueup.cli.app import Group, app
from trueup.cli.options import BackupDirOption, ConfigOption, DatabaseOption, RuleOption, YesOption
from trueup.errors import TrueupError, UsageError
from trueup.paths import DEFAULT_BACKUP_DIRECTORY

backup_app = typer.Typer(cls=Group)
app.add_typer(backup_app, name="backup")

FileArgument = Annotated[Path, typer.Argument(metavar="FILE", help="A backup file or its .manifest.json.")]


@backup_app.callback(invoke_without_command=True)
@common.handles_errors
def backup(
    context: typer.Context,
    config: ConfigOption = None,
    database: DatabaseOption = None,
    rule: RuleOption = None,
    table: Annotated[
        list[str] | None, typer.Option("--table", "-t", metavar="NAME", help="Back up this table (repeatable).")
    ] = None,
    backup_dir: BackupDirOption = DEFAULT_BACKUP_DIRECTORY,
) -> None:
    """Back up whole tables with the database's own tool (default: every rule's recorded table).

    Example: trueup backup --rule storefront --backup-dir /var/backups/trueup
    """
    if context.invoked_subcommand is not None:
        return
    from trueup.reconcile.backup import backup_tables

    cfg = common.load_config_for(config, database)
    tables = table or [r.recorded.table for r in cfg.select_rules(rule)]
    if not tables:
        raise UsageError("nothing to back up: name tables with --table, or rules in the config")
    with common.session(cfg, database) as connection:
        made = backup_tables(connection, connection.engine.url, tables, backup_dir)
    if made.path is None:
        raise TrueupError(made.warning or "no backup was made")
    rows = ", ".join(f"{t.name}: {t.rows} rows" for t in made.manifest.tables) if made.manifest else ""
    common.note(f"Backed up {rows} to {made.path}", common.stdout())


@backup_app.command("list")
@common.handles_errors
def list_(backup_dir: BackupDirOption = DEFAULT_BACKUP_DIRECTORY) -> None:
    """List the backups in the backup directory, oldest first.

    Example: trueup backup list --backup-dir /var/backups/trueup
    """
    from trueup.reconcile.backup import list_backups
    from trueup.report.repair import print_backups

    print_backups(list_backups(backup_dir), common.stdout())


@backup_app.command("verify")
@common.handles_errors
def verify(file: FileArgument) -> None:
    """Check a backup against its manifest (size, sha256) and with its tool; exit 1 if it fails.

    Example: trueup backup verify trueup-backups/20261121T101500Z-shop.dump
    """
    from trueup.reconcile.backup import verify_backup
    from trueup.report.repair import print_verification

    verification = verify_backup(file)
    print_verification(verification, common.stdout())
    raise typer.Exit(0 if verification.ok else 1)


@app.command()
@common.handles_errors
def restore(
    file: FileArgument,
    config: ConfigOption = None,
    database: DatabaseOption = None,
    confirm: Annotated[bool, typer.Option("--confirm", help="Yes: replace the tables with the backup.")] = False,
    backup_dir: BackupDirOption = DEFAULT_BACKUP_DIRECTORY,
    yes: YesOption = False,
) -> None:
    """Replace the backed-up tables with their contents in a verified backup, as a run `trueup undo` reverses.

    This discards every change made to those tables since the backup, so the
    tables as they are are backed up first (into --backup-dir); prefer
    `trueup undo RUN`, which reverts only what one run changed.

    Example: trueup restore trueup-backups/20261121T101500Z-shop.dump --confirm
    """
    if not confirm:
        raise UsageError(f"restore replaces whole tables with {file}; pass --confirm if that is what you want")
    from trueup.reconcile.backup import restore_backup
    from trueup.reconcile.guard import confirm_writes
    from trueup.report.repair import print_restore

    cfg = common.load_config_for(config, database)
    with common.session(cfg, database) as connection:
        url = connection.engine.url
        confirm_writes(url, cfg.database.production_pattern, f"restore {file}", yes=yes, confirm=common.confirmer())
        done = restore_backup(connection, url, file, backup_dir)
    print_restore(done, file, common.stdout())
