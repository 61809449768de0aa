"""Undo a run exactly: put back each row's pre-image, in one transaction, as a run of its own.

A run recorded three kinds of change, and each has an exact inverse:

| the run did                      | undo does                          | only if the row still...        |
| -------------------------------- | ---------------------------------- | ------------------------------- |
| update quantity before -> after  | set quantity back to before        | holds `after`                   |
| insert a row (apply, missing)    | delete it (its image is recorded)  | holds `after`                   |
| delete a row (an earlier undo)   | insert its recorded image again    | is still absent                 |
| create a table (cost --write)    | drop it                            | is empty once the rows are out  |
| drop a table (an earlier undo)   | create it again from its DDL       | is still absent                 |
| restore tables from a backup     | restore the backup taken before it | (always: it backs them up first)|
| install triggers (guard)         | drop them (the statements recorded)| (always: each drop is IF EXISTS)|

Rows that no longer hold what the run wrote were changed since: they are
*conflicts*. By default one conflict refuses the whole undo and nothing
changes; `skip_conflicts` restores the rest and leaves them alone; `force`
overwrites rows changed since (rows that have vanished stay vanished). The
undo records its own pre-images, so it can be undone in turn.

Example: run 7 set item 1 from 100 to 90 and item 2 from 5 to 8. A sale then
took item 2 to 7. `undo 7` refuses (item 2 holds 7, not 8); `undo 7
--skip-conflicts` sets item 1 back to 100 and leaves item 2 at 7.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from trueup.db import dialect_for, driver_message
from trueup.errors import ConflictError, DatabaseError, RefusedError, UsageError
from trueup.paths import DEFAULT_BACKUP_DIRECTORY
from trueup.reconcile import audit, images
from trueup.reconcile.apply import Conflict
from trueup.reconcile.backup import restore_backup
from trueup.reconcile.query import in_key_table
from trueup.reconcile.target import Target
from trueup.reconcile.worktable import FLAG, QUANTITY, WorkTable
from trueup.report.format import to_json

UPDATE, INSERT, DELETE = 1, 2, 3
_OPS = {"update": UPDATE, "insert": INSERT, "delete": DELETE}
TABLE_OPS = ("create", "drop")
LISTED = 10


class UndoResult(NamedTuple):
    run_id: int  # the undo's own run
    undone: int  # the run it undid
    restored: int
    deleted: int
    reinserted: int
    conflicts: tuple[Conflict, ...]
    dropped: tuple[str, ...] = ()  # tables the run had created, dropped again
    triggers: tuple[str, ...] = ()  # the triggers a guard install had created, dropped again

    @property
    def changed(self) -> int:
        return self.restored + self.deleted + self.reinserted

    @property
    def exit_code(self) -> int:
        return 1 if self.conflicts else 0


class _Counts(NamedTuple):
    restored: int = 0
    deleted: int = 0
    reinserted: int = 0


def undo_run(
    connection: Connection,
    run_id: int,
    *,
    force: bool = False,
    skip_conflicts: bool = False,
    triggered_by: str = "cli",
    lock_timeout: float = 30,
) -> UndoResult:
    if force and skip_conflicts:
        raise UsageError(
            "--force (restore rows changed since) and --skip-conflicts (leave them alone) contradict: choose one"
        )
    audit.ensure_tables(connection)
    original = audit.get_run(connection, run_id)
    if original.undone_by is not None:
        raise RefusedError(
            f"run {run_id} was already undone by run {original.undone_by}; undo run {original.undone_by} to redo it"
        )
    if original.undoes_run is not None and audit.get_run(connection, original.undoes_run).kind == "guard":
        raise RefusedError(
            f"run {run_id} removed a guard; install it again with: trueup guard install --rule {original.rule}"
        )
    changes = audit.run_changes(connection, run_id)
    restores = [c for c in changes if c.op == "restore"]
    if restores:
        return _undo_restore(connection, run_id, restores, triggered_by)
    triggers = [c for c in changes if c.op == "trigger"]
    if triggers:
        return _undo_triggers(connection, original, triggers, triggered_by, lock_timeout)
    tables = [c for c in changes if c.op in TABLE_OPS]
    groups = _by_target([c for c in changes if c.op not in TABLE_OPS])
    try:
        with dialect_for(connection).write_transaction(connection, lock_timeout) as tx:
            new_id = audit.start_run(tx, kind="undo", rule=original.rule, triggered_by=triggered_by, undoes_run=run_id)
            for change in tables:
                if change.op == "drop":  # before rows come back into it
                    _create_again(tx, change, new_id)
            prepared = [
                _prepare(tx, target, rule, changes, index) for index, (target, rule, changes) in enumerate(groups)
            ]
            conflicts = tuple(c for _, found, _ in prepared for c in found)
            unsure = tuple(c for _, _, found in prepared for c in found)
            if (conflicts or unsure) and not (force or skip_conflicts):
                raise ConflictError(_conflict_message(run_id, unsure + conflicts))
            counts = [
                _restore(tx, work, rule, changes, new_id, force)
                for (work, _, _), (_, rule, changes) in zip(prepared, groups, strict=True)
            ]
            total = _Counts(*(sum(c[i] for c in counts) for i in range(3)))
            if not any(total):
                raise RefusedError(
                    f"nothing to undo: every row of run {run_id} was changed since ({_listed(unsure + conflicts)})"
                )
            audit.finish_run(
                tx,
                new_id,
                updated=total.restored,
                deleted=total.deleted,
                inserted=total.reinserted,
                conflicts=len(unsure) + (len(conflicts) if skip_conflicts else 0),
                status="verified",
            )
            audit.set_status(tx, run_id, status="undone", undone_by=new_id)
            for work, _, _ in prepared:
                work.drop()
            # Last: MySQL commits what came before a DROP TABLE (and a killed undo leaves an empty table).
            dropped = tuple(c.table_name for c in tables if c.op == "create" and _drop_if_empty(tx, c, new_id))
    except DBAPIError as error:
        raise DatabaseError(f"undo failed and was rolled back: {driver_message(error)}") from None
    left_alone = unsure + (conflicts if skip_conflicts else ())
    return UndoResult(new_id, run_id, *total, left_alone, dropped)


def _by_target(changes: list[audit.Change]) -> list[tuple[Target, str, list[audit.Change]]]:
    groups: dict[tuple[Target, str], list[audit.Change]] = {}
    for change in changes:
        groups.setdefault((_target(change), change.rule), []).append(change)
    return [(target, rule, found) for (target, rule), found in groups.items()]


def _prepare(
    tx: Connection, target: Target, rule: str, changes: list[audit.Change], index: int
) -> tuple[WorkTable, tuple[Conflict, ...], tuple[Conflict, ...]]:
    """Load the run's changes for one table into a work table, lock the rows, find the conflicts.

    Returns the work table, the conflicts (`force` overwrites them) and the inserted rows that
    cannot be told apart from others (always left alone, see `_unsure_inserts`).
    """
    columns = {"before_q": QUANTITY, "after_q": QUANTITY, "op": FLAG, "seq": FLAG}
    work = WorkTable(tx, f"trueup_undo_{index}", target, columns)
    keys = target.coerce_keys(tx, (c.key for c in changes))
    work.create().fill(
        {f"k{i}": v for i, v in enumerate(key)} | {"before_q": c.before, "after_q": c.after, "op": _OPS[c.op], "seq": n}
        for n, (key, c) in enumerate(zip(keys, changes, strict=True))
    )
    work.lock_targets()
    unsure = _unsure_inserts(tx, work, rule, changes)
    table = target.clause()
    w, t = work.table.c, table.c
    first_key = t[target.key[0]]
    query = (
        sa.select(*work.keys, w.op, w.after_q, first_key.is_not(None), t[target.quantity])
        .select_from(work.table.outerjoin(table, sa.and_(*work.joins([t[k] for k in target.key]))))
        .where(_conflicting(work, first_key, t[target.quantity]))
    )
    conflicts = []
    for row in tx.execute(query):
        key, (op, wrote, exists, holds) = tuple(row[: work.width]), row[work.width :]
        if op == DELETE:
            reason = "a row with this key exists again"
        elif not exists:
            reason = "the row no longer exists"
        else:
            reason = f"now holds {holds}, the run wrote {wrote}"
        conflicts.append(Conflict(rule, key, reason))
    return work, tuple(conflicts), unsure


def _unsure_inserts(tx: Connection, work: WorkTable, rule: str, changes: list[audit.Change]) -> tuple[Conflict, ...]:
    """Keys the run inserted whose row cannot be told apart now: taken out of `work`, listed.

    Undo deletes a row the run inserted only if it is that very row: the one row holding its key,
    whose other columns (an id, defaults) match the image the run recorded. A second row with the
    key (on a table without a primary key), or a row put in its place, is someone else's.
    """
    if not any(c.op == "insert" for c in changes):
        return ()
    target = work.target
    full = target.raw_rows(tx)
    w = work.table.c
    joined = work.table.join(full, sa.and_(*work.joins([full.c[k] for k in target.key])))
    found: dict[int, list[dict[str, Any]]] = {}
    for row in tx.execute(sa.select(w.seq, *full.c).select_from(joined).where(w.op == INSERT)):
        found.setdefault(row[0], []).append(dict(zip(full.c.keys(), row[1:], strict=True)))
    unsure: dict[int, str] = {}
    for seq, rows in found.items():
        differs = _differs(changes[seq].row_image or {}, rows[0], target.quantity)
        if len(rows) > 1:
            unsure[seq] = f"{len(rows)} rows hold this key now; which one the run inserted cannot be told: left alone"
        elif differs:
            unsure[seq] = (
                f"the row holding this key is not the one the run inserted ({', '.join(differs)} differs): left alone"
            )
    if unsure:
        tx.execute(sa.delete(work.table).where(w.seq.in_(list(unsure))))
    return tuple(Conflict(rule, changes[seq].key, reason) for seq, reason in sorted(unsure.items()))


def _differs(image: dict[str, Any], row: dict[str, Any], quantity: str) -> list[str]:
    """The columns (besides the quantity, which `force` may overwrite) where `row` is not `image`."""
    return [
        column
        for column, value in image.items()
        if column != quantity
        and (column not in row or not _same(json.loads(to_json(row[column]), parse_float=Decimal), value))
    ]


def _same(now: Any, recorded: Any) -> bool:
    """One value as JSON now and as the image recorded it: images built by the database (`Dialect.row_json`)
    spell times and numbers their own way (`2024-01-05 00:00:00` for `2024-01-05T00:00:00`, `150.00` for `150`)."""
    if now == recorded:
        return True
    for parse in (Decimal, datetime.fromisoformat):
        try:
            return parse(str(now)) == parse(str(recorded))
        except (ArithmeticError, ValueError):
            continue
    return False


def _conflicting(
    work: WorkTable, first_key: sa.ColumnElement[Any], quantity: sa.ColumnElement[Any]
) -> sa.ColumnElement[bool]:
    """On `work LEFT JOIN target`: the row no longer holds what the run wrote.

    A row the run deleted must still be absent, unless the run inserted a row with the same key
    in its place (a replacement): undo deletes that one first.
    """
    w = work.table.c
    changed = sa.or_(first_key.is_(None), quantity.is_distinct_from(w.after_q))
    back = sa.and_(w.op == DELETE, first_key.is_not(None), ~_replaced(work).exists())
    return sa.or_(sa.and_(w.op.in_([UPDATE, INSERT]), changed), back)


def _replaced(work: WorkTable) -> sa.Select:
    """The run's insert of the same key as this work row (a deleted row's replacement)."""
    pair = work.table.alias("pair")
    same_key = [pair.c[name] == work.table.c[name] for name in work.key_names]
    return sa.select(sa.literal(1)).select_from(pair).where(*same_key, pair.c.op == INSERT)


def _restore(
    tx: Connection, work: WorkTable, rule: str, changes: list[audit.Change], run_id: int, force: bool
) -> _Counts:
    target = work.target
    table = target.clause()
    w, t = work.table.c, table.c
    joined = work.joins([t[k] for k in target.key])
    if not force:
        _drop_conflicts(tx, work, table)
    # Updates: record today's value as the undo's pre-image, then put the run's pre-image back.
    fixed = images.change_row(run_id, rule, target, None, "update")
    updates = (
        sa.select(
            *[sa.literal(v) for v in fixed.values()],
            dialect_for(tx).json_array(*work.keys),
            sa.cast(t[target.quantity], sa.Text),
            sa.cast(w.before_q, sa.Text),
        )
        .select_from(work.table.join(table, sa.and_(*joined)))
        .where(w.op == UPDATE)
    )
    tx.execute(sa.insert(audit.changes).from_select([*fixed, "key", "before_value", "after_value"], updates))
    restored = tx.execute(
        sa.update(table).where(*joined, w.op == UPDATE).values({target.quantity: w.before_q})
    ).rowcount
    deleted = _delete_inserted(tx, work, rule, run_id) if any(c.op == "insert" for c in changes) else 0
    reinserted = _reinsert_deleted(tx, work, rule, [c for c in changes if c.op == "delete"], run_id)
    return _Counts(restored, deleted, reinserted)


def _drop_conflicts(tx: Connection, work: WorkTable, table: sa.TableClause) -> None:
    """Leave conflicting rows alone: remove them from what will be written."""
    target = work.target
    w, t = work.table.c, table.c
    holds = sa.select(sa.literal(1)).select_from(table).where(*work.joins([t[k] for k in target.key]))
    unchanged = holds.where(t[target.quantity].is_not_distinct_from(w.after_q)).exists()
    tx.execute(sa.delete(work.table).where(w.op.in_([UPDATE, INSERT]), ~unchanged))
    # A deleted row can come back only where no row stands, or where its surviving replacement will go.
    tx.execute(sa.delete(work.table).where(w.op == DELETE, holds.exists(), ~_replaced(work).exists()))


def _delete_inserted(tx: Connection, work: WorkTable, rule: str, run_id: int) -> int:
    """Delete the rows the run inserted, keeping each full row image in the undo's audit."""
    target = work.target
    full = target.raw_rows(tx)
    inserted = in_key_table([full.c[k] for k in target.key], work.table, work.table.c.op == INSERT)
    rows = [dict(r._mapping) for r in tx.execute(sa.select(full).where(inserted))]
    if not rows:
        return 0
    images.record_rows(tx, run_id, rule, target, "delete", rows)
    deleted = tx.execute(sa.delete(full).where(inserted)).rowcount  # by the same test, not a list of every key
    if deleted != len(rows):
        raise DatabaseError(f"undo: expected to delete {len(rows)} inserted rows but deleted {deleted}; rolled back")
    return deleted


def _reinsert_deleted(tx: Connection, work: WorkTable, rule: str, deleted: list[audit.Change], run_id: int) -> int:
    """Insert again, value for value, the rows the run deleted (those still wanted after conflicts)."""
    if not deleted:
        return 0
    target = work.target
    w = work.table.c
    wanted = {to_json(list(r)) for r in tx.execute(sa.select(*work.keys).where(w.op == DELETE))}
    rows = [c.row_image for c in deleted if c.row_image and to_json([c.row_image[k] for k in target.key]) in wanted]
    if rows:
        tx.execute(sa.insert(target.raw_rows(tx)).values(rows))
        images.record_rows(tx, run_id, rule, target, "insert", rows)
    return len(rows)


def _undo_restore(connection: Connection, run_id: int, restores: list[audit.Change], triggered_by: str) -> UndoResult:
    """Put the tables back as they were before a restore: its pre-restore backup restored and the tables
    it created dropped, as a restore of its own (which backs up what it replaces first, so it can be
    undone in turn). What changed in those tables since the restore is in that backup."""
    image = restores[0].row_image or {}
    backup = image.get("backup")
    created = tuple(c.table_name for c in restores if c.before is None)
    path = Path(backup) if backup else None
    directory = Path(image.get("directory") or DEFAULT_BACKUP_DIRECTORY)
    url = connection.engine.url
    done = restore_backup(connection, url, path, directory, triggered_by=triggered_by, undoes_run=run_id, drop=created)
    with dialect_for(connection).write_transaction(connection) as tx:
        audit.set_status(tx, run_id, status="undone", undone_by=done.run_id)
    restored = sum(t.rows for t in done.manifest.tables) if done.manifest else 0
    return UndoResult(done.run_id, run_id, restored, 0, 0, (), created)


def _undo_triggers(
    connection: Connection, original: audit.Run, triggers: list[audit.Change], triggered_by: str, lock_timeout: float
) -> UndoResult:
    """Drop the triggers (and functions) a guard install recorded, with the statements it recorded."""
    try:
        with dialect_for(connection).write_transaction(connection, lock_timeout) as tx:
            new_id = audit.start_run(
                tx, kind="undo", rule=original.rule, triggered_by=triggered_by, undoes_run=original.id
            )
            for change in triggers:
                for statement in (change.row_image or {}).get("drop", []):
                    tx.exec_driver_sql(statement)
            audit.finish_run(tx, new_id, status="verified")
            audit.set_status(tx, original.id, status="undone", undone_by=new_id)
    except DBAPIError as error:
        raise DatabaseError(f"undo failed and was rolled back: {driver_message(error)}") from None
    return UndoResult(new_id, original.id, 0, 0, 0, (), triggers=tuple(str(c.key[0]) for c in triggers))


def _create_again(tx: Connection, change: audit.Change, run_id: int) -> None:
    """Create a table the run dropped, from the DDL it recorded (unless it exists again)."""
    ddl = (change.row_image or {})["ddl"]
    if not sa.inspect(tx).has_table(change.table_name):
        tx.exec_driver_sql(ddl)
    images.record_table(tx, run_id, change.rule, _target(change), "create", ddl)


def _drop_if_empty(tx: Connection, change: audit.Change, run_id: int) -> bool:
    """Drop a table the run created, if no row is left in it (rows other runs wrote keep it)."""
    table = sa.table(change.table_name)
    if not sa.inspect(tx).has_table(change.table_name):
        return False
    if tx.execute(sa.select(sa.literal(1)).select_from(table).limit(1)).first() is not None:
        return False
    images.record_table(tx, run_id, change.rule, _target(change), "drop", (change.row_image or {})["ddl"])
    tx.exec_driver_sql(f"DROP TABLE {tx.dialect.identifier_preparer.quote(change.table_name)}")
    return True


def _target(change: audit.Change) -> Target:
    return Target(change.table_name, change.key_columns, change.quantity_column)


def _conflict_message(run_id: int, conflicts: tuple[Conflict, ...]) -> str:
    return (
        f"refused: {len(conflicts)} row(s) changed since run {run_id} wrote them ({_listed(conflicts)}). "
        "Nothing was changed. --skip-conflicts restores the other rows; --force overwrites these too"
    )


def _listed(conflicts: tuple[Conflict, ...]) -> str:
    listed = "; ".join(f"{c.rule} {list(c.key)}: {c.reason}" for c in conflicts[:LISTED])
    return listed + (f"; and {len(conflicts) - LISTED} more" if len(conflicts) > LISTED else "")
