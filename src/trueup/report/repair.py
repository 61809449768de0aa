"""Plans, applied runs, undos and backups: tables for people, plain documents for JSON."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any, NotRequired

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from trueup.reconcile.apply import ApplyResult, Conflict
from trueup.reconcile.audit import Change, Run
from trueup.reconcile.backup import Manifest, Restored, Verification
from trueup.reconcile.drift import Flagged
from trueup.reconcile.plan import FlaggedEntry, Plan, RulePlan, flagged_dict
from trueup.reconcile.undo import UndoResult
from trueup.report.format import NONE, cell, key_text, literal, number
from trueup.report.table import findings_table
from trueup.schema import Document, Exact, KeyValues, record, without

RunEntry = record(Run, "RunEntry", changed=int, by=str)  # what run_dict gives: the audit row, with two figures


class ConflictEntry(Document):
    rule: str
    key: KeyValues
    reason: str


class RuleAppliedEntry(Document):
    name: str
    updated: int
    inserted: int
    residual: Exact
    left_out: list[FlaggedEntry]


class ApplyDocument(Document):
    """What `trueup apply --format json` prints and `POST /api/apply` answers."""

    run_id: int | None
    status: str
    changed: int
    updated: int
    inserted: int
    residual: Exact
    applied_as: int | None
    rules: list[RuleAppliedEntry]
    conflicts: list[ConflictEntry]
    backup: str | None
    warnings: list[str]


class UndoDocument(Document):
    """What `trueup undo --format json` prints and `POST /api/runs/{id}/undo` answers."""

    run_id: int
    undone: int
    changed: int
    restored: int
    deleted: int
    reinserted: int
    dropped_tables: list[str]
    dropped_triggers: list[str]
    conflicts: list[ConflictEntry]


class ChangeEntry(Document):
    """One row a run wrote: its key, the figure before and after, and the whole row it replaced or removed."""

    rule: str
    table: str
    key_columns: list[str]
    quantity_column: str
    key: KeyValues
    op: str
    before: Exact | None
    after: Exact | None
    row: dict[str, Any] | None


SHOWN = 20


class RunsDocument(Document):
    """What `trueup runs --format json` prints and `GET /api/runs` answers: newest first."""

    runs: list[RunEntry]  # type: ignore[valid-type]


class Page(Document):
    limit: int
    offset: int
    total: int  # rows the run changed in all


class RunDocument(Document):
    """What `trueup runs show --format json` prints; `GET /api/runs/{id}` pages the changes and says how."""

    run: RunEntry  # type: ignore[valid-type]
    changes: list[ChangeEntry]
    page: NotRequired[Page]


BackupEntry = without(Manifest, "BackupEntry", "database")  # pages and API bodies never name the database


class RestoreDocument(Document):
    """What `POST /api/backups/{name}/restore` answers: the restore's run, and the backup taken just before."""

    run_id: int
    tables: list[str]
    restored: BackupEntry | None  # type: ignore[valid-type]
    before: str | None


def print_plan(plan: Plan, console: Console, shown: int = SHOWN) -> None:
    for rule in plan.rules:
        _print_rule_plan(rule, console, shown)
        if rule.left_out:
            console.print(left_out_table(rule.rule, rule.left_out, shown))
        if rule.findings:
            console.print(findings_table(rule.findings))
    if not plan.changes and not plan.left_out:
        console.print(literal(f"Nothing to correct: {adds_up([r.rule for r in plan.rules])}.", "bold green"))


def _print_rule_plan(rule: RulePlan, console: Console, shown: int) -> None:
    if not rule.corrections:
        console.print(Text.assemble(literal(rule.rule, "bold"), ": nothing to correct"))
        return
    total = sum((abs(c.delta) for c in rule.corrections), Decimal(0))
    title = f"{rule.rule}: {len(rule.corrections)} correction(s) to {rule.table}.{rule.quantity}"
    title += f", total |delta| {number(total)}"
    if rule.drifted > len(rule.corrections) + len(rule.left_out):
        title += f" (the worst {len(rule.corrections)} of {number(rule.drifted)} drifted keys)"
    console.print(literal(title, "bold"))
    table = Table(box=box.SIMPLE_HEAD)
    for column in rule.key_columns:
        table.add_column(literal(column))
    for column in ("recorded", "expected", "delta"):
        table.add_column(column, justify="right")
    for c in rule.corrections[:shown]:
        recorded = "(insert)" if c.missing else number(c.recorded)
        table.add_row(*[literal(cell(k)) for k in c.key], recorded, number(c.expected), number(c.delta, signed=True))
    console.print(table)
    if len(rule.corrections) > shown:
        console.print(f"  …and {len(rule.corrections) - shown} more (--format json or --out FILE lists all)")


def left_out_table(rule: str, left_out: tuple[Flagged, ...], shown: int = SHOWN) -> Table:
    """Drifted keys a repair did not write because trueup flags their figures as wrong."""
    title = literal(f"{rule}: {len(left_out)} key(s) left out for an error finding")
    table = Table(title=title, title_justify="left", caption_justify="left", box=box.SIMPLE_HEAD)
    for column, justify in (("key", "left"), ("recorded", "right"), ("expected", "right"), ("finding", "left")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for f in left_out[:shown]:
        table.add_row(literal(key_text(f.key)), number(f.recorded), number(f.expected), ", ".join(f.findings))
    more = f"…and {len(left_out) - shown} more (--format json lists all); " if len(left_out) > shown else ""
    table.caption = more + "--include-flagged writes them"
    return table


def adds_up(rules: list[str]) -> str:
    """'storefront adds up', 'a, b add up': what was looked at, named."""
    if not rules:
        return "no rule selected"
    return f"{', '.join(rules)} add{'s' if len(rules) == 1 else ''} up"


def print_apply(result: ApplyResult, console: Console) -> None:
    if result.applied_as is not None:
        console.print(
            Text(f"Already applied as run {result.applied_as}; nothing written.", style="bold green"),
            f"(trueup runs show {result.applied_as} lists what it changed)",
        )
    elif result.run_id is None:
        if result.status != "nothing to do":
            console.print(Text("Nothing was written.", style="bold red"))
        elif result.left_out:
            console.print(Text("Nothing to apply but the keys left out below.", style="bold"))
        else:
            console.print(Text(f"Nothing to apply: {adds_up([r.rule for r in result.rules])}.", style="bold green"))
    else:
        applied = f"Run {result.run_id} applied: {result.updated} row(s) updated, {result.inserted} inserted."
        console.print(Text(applied, style="bold green"))
        if result.residual:
            console.print(
                Text(f"Verify found residual drift of {number(result.residual)} on the applied keys.", style="bold red")
            )
        else:
            console.print("Verified: the applied keys add up.")
        console.print(f"Undo with: trueup undo {result.run_id}")
    if result.conflicts:
        console.print(conflicts_table(result.conflicts, "Refused"))
    for rule in result.rules:
        if rule.left_out:
            console.print(left_out_table(rule.rule, rule.left_out))


def conflicts_table(conflicts: tuple[Conflict, ...], title: str) -> Table:
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    for column in ("rule", "key", "why"):
        table.add_column(column)
    for c in conflicts:
        table.add_row(literal(c.rule), literal(key_text(c.key)), literal(c.reason))
    return table


def apply_document(result: ApplyResult) -> ApplyDocument:
    return {
        "run_id": result.run_id,
        "status": result.status,
        "changed": result.changed,
        "updated": result.updated,
        "inserted": result.inserted,
        "residual": result.residual,
        "applied_as": result.applied_as,
        "rules": [
            {
                "name": r.rule,
                "updated": r.updated,
                "inserted": r.inserted,
                "residual": r.residual,
                "left_out": [flagged_dict(f) for f in r.left_out],
            }
            for r in result.rules
        ],
        "conflicts": [conflict_dict(c) for c in result.conflicts],
        "backup": str(result.backup) if result.backup else None,
        "warnings": list(result.warnings),
    }


def conflict_dict(conflict: Conflict) -> ConflictEntry:
    return {"rule": conflict.rule, "key": list(conflict.key), "reason": conflict.reason}


def print_undo(result: UndoResult, console: Console) -> None:
    if result.triggers:
        console.print(
            f"Run {result.run_id} undid run {result.undone}: dropped its {len(result.triggers)} guard trigger(s).",
            style="bold green",
            highlight=False,
        )
        return
    console.print(
        Text(
            f"Run {result.run_id} undid run {result.undone}: {result.restored} row(s) restored, "
            f"{result.deleted} deleted, {result.reinserted} re-inserted.",
            style="bold green",
        )
    )
    if result.dropped:
        console.print(literal(f"Dropped the table(s) the run had created: {', '.join(result.dropped)}."))
    if result.conflicts:
        console.print(conflicts_table(result.conflicts, "Left alone: changed since the run"))
    console.print(f"Undo the undo with: trueup undo {result.run_id}")


def print_restore(done: Restored, file: Path, console: Console) -> None:
    restored = ", ".join(f"{t.name} ({t.rows} rows)" for t in done.manifest.tables) if done.manifest else "nothing"
    console.print(literal(f"Restored {restored} from {file} as run {done.run_id}."))
    if done.before.path is not None:
        console.print(literal(f"The tables as they were are backed up in {done.before.path}."))
    console.print(f"Undo with: trueup undo {done.run_id}", highlight=False)


def undo_document(result: UndoResult) -> UndoDocument:
    return {
        "run_id": result.run_id,
        "undone": result.undone,
        "changed": result.changed,
        "restored": result.restored,
        "deleted": result.deleted,
        "reinserted": result.reinserted,
        "dropped_tables": list(result.dropped),
        "dropped_triggers": list(result.triggers),
        "conflicts": [conflict_dict(c) for c in result.conflicts],
    }


def print_runs(runs: list[Run], console: Console) -> None:
    if not runs:
        console.print("No runs yet.")
        return
    table = Table(box=box.SIMPLE_HEAD)
    for column in ("run", "kind", "rules", "started (UTC)", "by", "triggered by", "changed", "status"):
        table.add_column(column, justify="right" if column in ("run", "changed") else "left")
    for run in runs:
        status = run.status + (f" by {run.undone_by}" if run.undone_by else "")
        kind = run.kind + (f" of {run.undoes_run}" if run.undoes_run else "")
        table.add_row(
            str(run.id), kind, literal(run.rule), f"{run.started_at:%Y-%m-%d %H:%M}", literal(run_by(run)),
            literal(run.triggered_by), number(run.changed), status,
        )  # fmt: skip
    console.print(table)


def run_by(run: Run) -> str:
    """Who ran it: the OS user and host that applied it (`deploy@web-1`)."""
    if not run.host:
        return run.os_user or NONE
    return f"{run.os_user or NONE}@{run.host}"


def run_dict(run: Run) -> dict[str, Any]:
    return run._asdict() | {"changed": run.changed, "by": run_by(run)}


def runs_document(runs: list[Run]) -> RunsDocument:
    return {"runs": [run_dict(r) for r in runs]}


def run_document(run: Run, changes: list[Change]) -> RunDocument:
    return {"run": run_dict(run), "changes": [change_dict(c) for c in changes]}


def print_run(run: Run, changes: list[Change], console: Console, shown: int = SHOWN) -> None:
    print_runs([run], console)
    fields = [
        ("config sha256", run.config_sha256),
        ("plan sha256", run.plan_sha256),
        ("residual drift", run.residual),
    ]
    for label, value in fields:
        if value:
            console.print(literal(f"  {label}: {value}"))
    table = Table(title="Changes", title_justify="left", box=box.SIMPLE_HEAD)
    for column in ("rule", "table", "key", "op", "before", "after"):
        table.add_column(column, justify="right" if column in ("before", "after") else "left")
    for change in changes[:shown]:
        table.add_row(
            literal(change.rule), literal(change.table_name), literal(key_text(change.key)), change.op,
            number(change.before), number(change.after),
        )  # fmt: skip
    console.print(table)
    if len(changes) > shown:
        console.print(f"  …and {len(changes) - shown} more (--limit or --format json)")


def change_dict(change: Change) -> ChangeEntry:
    return {
        "rule": change.rule,
        "table": change.table_name,
        "key_columns": list(change.key_columns),
        "quantity_column": change.quantity_column,
        "key": list(change.key),
        "op": change.op,
        "before": change.before,
        "after": change.after,
        "row": change.row_image,
    }


def print_backups(backups: list[tuple[Path, Manifest]], console: Console) -> None:
    if not backups:
        console.print("No backups here.")
        return
    table = Table(title=literal(f"Backups in {backups[0][0].parent}"), title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("file", no_wrap=True)
    table.add_column("created (UTC)", no_wrap=True)
    table.add_column("tables (rows)", overflow="fold")
    table.add_column("bytes", justify="right", no_wrap=True)
    for _, manifest in backups:
        tables = ", ".join(f"{t.name} ({number(t.rows)})" for t in manifest.tables)
        table.add_row(
            literal(manifest.file), f"{manifest.created_at:%Y-%m-%d %H:%M}", literal(tables), number(manifest.size)
        )
    console.print(table)


def backup_dict(manifest: Manifest) -> dict[str, Any]:
    """A backup's manifest, without the database it came from (pages and API bodies never name it)."""
    return manifest.model_dump(mode="json", exclude={"database"})


def restore_document(done: Restored) -> RestoreDocument:
    return {
        "run_id": done.run_id,
        "tables": list(done.tables),
        "restored": backup_dict(done.manifest) if done.manifest else None,
        "before": str(done.before.path.name) if done.before.path else None,
    }


def print_verification(verification: Verification, console: Console) -> None:
    if verification.ok:
        console.print(Text(f"{verification.path}: OK", style="bold green"))
    for problem in verification.problems:
        console.print(Text(f"{verification.path}: {problem}", style="bold red"))
