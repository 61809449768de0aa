"""Apply a plan: every correction of every rule in one transaction, with its audit, then verify.

For each rule, inside one READ COMMITTED transaction (SQLite: BEGIN IMMEDIATE):

1. the plan's keys go into a temporary table `trueup_keys_N`;
2. the recorded rows of those keys are locked (`SELECT … FOR UPDATE`, in key
   order), so no writer can change them until commit;
3. the comparison is recomputed for those keys only, *after* the lock, into
   `trueup_now_N` (`INSERT … SELECT`): what is written is the expected figure
   as of now, not as of planning;
4. for a saved plan, keys whose recorded or expected figure moved since the
   plan are refused and listed (the user reviewed other numbers);
5. one `UPDATE … JOIN trueup_now_N` sets recorded = expected (absolute, so a
   second apply finds nothing to do), missing rows are inserted where the rule
   allows it, and the pre/post images are copied to `trueup_changes` in one
   `INSERT … SELECT`, beside the `trueup_runs` row.

Why this is safe beside live writers: a sale that updates the cached figure
either committed before our lock (and our recompute sees both its record and
its update), or waits for our commit and then applies its own
`quantity = quantity - n` on top of our corrected figure. Either way nothing
is lost. A deadlock with a writer aborts our transaction cleanly and it is
retried from the start.

After commit the applied keys are checked again (`verify`); a residual is
recorded on the run and reported.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import DBAPIError

from trueup.config import Config, Rule
from trueup.db import dialect_for, driver_message, redact
from trueup.errors import DatabaseError, UsageError
from trueup.reconcile import audit
from trueup.reconcile.backup import DEFAULT_DIRECTORY, Backup, backup_tables
from trueup.reconcile.check import RuleScan
from trueup.reconcile.drift import as_decimal
from trueup.reconcile.guard import Limits, confirm_writes
from trueup.reconcile.plan import Plan, RulePlan, check_plan_fits, make_plan
from trueup.reconcile.query import EVERYTHING, Scope, comparison
from trueup.reconcile.resolve import resolve_rule
from trueup.reconcile.target import Target
from trueup.reconcile.worktable import FLAG, QUANTITY, WorkTable
from trueup.report.format import to_json

log = logging.getLogger(__name__)
ATTEMPTS = 3
NO_LIMITS = Limits()


class Conflict(NamedTuple):
    rule: str
    key: tuple[Any, ...]
    reason: str


class RuleApplied(NamedTuple):
    rule: str
    updated: int
    inserted: int
    conflicts: tuple[Conflict, ...]
    residual: Decimal = Decimal(0)


class ApplyResult(NamedTuple):
    run_id: int | None
    rules: tuple[RuleApplied, ...]
    status: str  # nothing to do | refused | verified | residual
    backup: Path | None = None
    warnings: tuple[str, ...] = ()

    @property
    def changed(self) -> int:
        return sum(r.updated + r.inserted for r in self.rules)

    @property
    def conflicts(self) -> tuple[Conflict, ...]:
        return tuple(c for r in self.rules for c in r.conflicts)

    @property
    def residual(self) -> Decimal:
        return sum((r.residual for r in self.rules), Decimal(0))

    @property
    def exit_code(self) -> int:
        return 1 if self.conflicts or self.residual else 0


Phase = Callable[[str], None]


def apply(
    connection: Connection,
    config: Config,
    url: URL,
    *,
    plan: Plan | None = None,
    rules: list[str] | None = None,
    scope: Scope = EVERYTHING,
    limit: int | None = None,
    limits: Limits = NO_LIMITS,
    backup_dir: Path | None = DEFAULT_DIRECTORY,
    yes: bool = False,
    confirm: Callable[[str], bool] | None = None,
    triggered_by: str = "cli",
    lock_timeout: float = 30,
    phase: Phase = lambda name: None,
) -> tuple[Plan, ApplyResult]:
    """Plan (or take a saved `plan`), pass the guard rails, back up, write, verify.

    `backup_dir=None` skips the file backup; row pre-images are always kept.
    On a database that looks like production, `yes` or `confirm(question)` must agree.
    """
    database = redact(url)
    saved = plan is not None
    if plan is None:
        phase("planning")
        plan = make_plan(connection, config, database=database, rules=rules, scope=scope, limit=limit)
    else:
        check_plan_fits(plan, config, database, "plan")
    limits.check(plan)
    if plan.changes:
        confirm_writes(
            url, config.database.production_pattern, f"write {plan.changes} correction(s)", yes=yes, confirm=confirm
        )

    def file_backup(tables: list[str]) -> Backup:
        phase("backing up")
        return backup_tables(connection, url, tables, backup_dir) if backup_dir else Backup(None, None)

    options = {"limits": limits, "triggered_by": triggered_by, "lock_timeout": lock_timeout, "phase": phase}
    return plan, apply_plan(connection, config, plan, saved=saved, backup=file_backup, **options)


def apply_plan(
    connection: Connection,
    config: Config,
    plan: Plan,
    *,
    saved: bool = False,
    limits: Limits = NO_LIMITS,
    triggered_by: str = "cli",
    backup: Callable[[list[str]], Backup] | None = None,
    lock_timeout: float = 30,
    phase: Phase = lambda name: None,
) -> ApplyResult:
    """Write `plan`; `saved` plans refuse keys that moved since, fresh ones take today's figures."""
    limits.check(plan)
    work = [(resolve_rule(connection, config.rule(r.rule)), r) for r in plan.rules if r.corrections]
    if not work:
        return ApplyResult(None, (), "nothing to do")
    audit.ensure_tables(connection)
    made = backup([rule.recorded.table for rule, _ in work]) if backup else Backup(None, None)
    backup_path, warnings = made.path, tuple(w for w in [made.warning] if w)
    dialect = dialect_for(connection)
    for attempt in range(1, ATTEMPTS + 1):
        try:
            with dialect.write_transaction(connection, lock_timeout) as tx:
                run_id, outcomes, tables = _write(tx, config, plan, work, saved, limits, triggered_by, phase)
            break
        except _NothingWritten as nothing:
            _drop_all(connection, nothing.tables)
            return ApplyResult(None, nothing.outcomes, "refused", backup_path, warnings)
        except DBAPIError as error:
            if attempt < ATTEMPTS and dialect.is_retryable(error):
                log.warning("apply: %s; retrying (attempt %d of %d)", driver_message(error), attempt + 1, ATTEMPTS)
                continue
            raise DatabaseError(f"apply failed and was rolled back: {driver_message(error)}") from None
    phase("verifying")
    outcomes = [
        _verify(connection, rule, outcome, now)
        for (rule, _), outcome, (_, now) in zip(work, outcomes, tables, strict=True)
    ]
    residual = sum((o.residual for o in outcomes), Decimal(0))
    status = "residual" if residual else "verified"
    with connection.begin():
        audit.set_status(connection, run_id, status=status, residual=str(residual))
    _drop_all(connection, tables)
    return ApplyResult(run_id, tuple(outcomes), status, backup_path, warnings)


class _NothingWritten(Exception):
    """Every correction was refused: roll back instead of recording an empty run."""

    def __init__(self, outcomes: tuple[RuleApplied, ...], tables: list[tuple[WorkTable, WorkTable]]):
        self.outcomes, self.tables = outcomes, tables


def _write(
    tx: Connection,
    config: Config,
    plan: Plan,
    work: list[tuple[Rule, RulePlan]],
    saved: bool,
    limits: Limits,
    triggered_by: str,
    phase: Phase,
) -> tuple[int, list[RuleApplied], list[tuple[WorkTable, WorkTable]]]:
    run_id = audit.start_run(
        tx,
        kind="apply",
        rule=",".join(rule.name for rule, _ in work),
        triggered_by=triggered_by,
        config_sha256=config.sha256,
        plan_sha256=plan.sha256,
    )
    outcomes, tables = [], []
    for index, (rule, rule_plan) in enumerate(work):
        phase(f"applying {rule.name}")
        outcome, keys, now = _apply_rule(tx, rule, rule_plan, run_id, index, saved)
        outcomes.append(outcome)
        tables.append((keys, now))
    if not any(o.updated or o.inserted for o in outcomes):
        raise _NothingWritten(tuple(outcomes), tables)
    audit.finish_run(
        tx,
        run_id,
        updated=sum(o.updated for o in outcomes),
        inserted=sum(o.inserted for o in outcomes),
        conflicts=sum(len(o.conflicts) for o in outcomes),
        status="applied",
    )
    return run_id, outcomes, tables


def _apply_rule(
    tx: Connection, rule: Rule, rule_plan: RulePlan, run_id: int, index: int, saved: bool
) -> tuple[RuleApplied, WorkTable, WorkTable]:
    target = Target.of(rule)
    keys = WorkTable(tx, f"trueup_keys_{index}", target, {"planned_recorded": QUANTITY, "planned_expected": QUANTITY})
    keys.create().fill(_planned_rows(tx, rule, target, rule_plan))
    keys.lock_targets()
    now = WorkTable(tx, f"trueup_now_{index}", target, {"observed": QUANTITY, "expected": QUANTITY, "missing": FLAG})
    now.create()
    tx.execute(sa.insert(now.table).from_select([c.name for c in now.table.c], _recompute(tx, rule, keys)))
    conflicts = _refuse_moved(tx, rule, keys, now) if saved else ()
    updated = _update(tx, rule, target, now)
    inserted = _insert_missing(tx, rule, target, now, run_id) if rule.recorded.insert_missing else 0
    _record_updates(tx, rule, target, now, run_id)
    return RuleApplied(rule.name, updated, inserted, conflicts), keys, now


def _planned_rows(tx: Connection, rule: Rule, target: Target, rule_plan: RulePlan) -> Any:
    keys = (c.key for c in rule_plan.corrections)
    try:
        for key, correction in zip(target.coerce_keys(tx, keys), rule_plan.corrections, strict=True):
            row = {f"k{i}": value for i, value in enumerate(key)}
            yield row | {"planned_recorded": correction.recorded, "planned_expected": correction.expected}
    except ValueError as error:
        raise UsageError(f"rule {rule.name!r}: a key in the plan does not fit its column: {error}") from None


def _recompute(tx: Connection, rule: Rule, keys: WorkTable) -> sa.Select:
    """Today's figures for the plan's keys that still need a correction."""
    scoped = comparison(rule, tx.dialect, dialect_for(tx), Scope(key_table=keys.table)).order_by(None).subquery("c")
    key_columns = [scoped.c[f"k{i}"] for i in range(len(rule.recorded.key))]
    writable = [scoped.c.rec_rows == 1] if not rule.recorded.insert_missing else [scoped.c.rec_rows <= 1]
    return sa.select(
        *key_columns,
        scoped.c.recorded,
        scoped.c.expected,
        sa.case((scoped.c.rec_rows == 0, 1), else_=0),
    ).where(scoped.c.expected != scoped.c.recorded, *writable, *[k.is_not(None) for k in key_columns])


def _refuse_moved(tx: Connection, rule: Rule, keys: WorkTable, now: WorkTable) -> tuple[Conflict, ...]:
    """Keys whose figures moved since a saved plan: listed, and removed from what will be written."""
    k, n = keys.table.c, now.table.c
    moved = sa.or_(
        n.k0.is_(None),
        k.planned_recorded.is_distinct_from(n.observed),
        k.planned_expected.is_distinct_from(n.expected),
    )
    query = (
        sa.select(*keys.keys, k.planned_recorded, k.planned_expected, n.k0.is_not(None), n.observed, n.expected)
        .select_from(keys.table.outerjoin(now.table, sa.and_(*keys.joins(now.keys))))
        .where(moved)
    )
    conflicts = []
    width = keys.width
    for row in tx.execute(query):
        key, planned_recorded, planned_expected, found, observed, expected = (
            tuple(row[:width]),
            *row[width:],
        )
        if not found:
            reason = "no longer needs a correction"
        elif as_decimal(observed) != as_decimal(planned_recorded):
            reason = f"recorded changed from {_text(planned_recorded)} to {_text(observed)} since the plan"
        else:
            reason = f"expected changed from {_text(planned_expected)} to {_text(expected)} since the plan"
        conflicts.append(Conflict(rule.name, key, reason))
    if conflicts:
        stale = sa.select(sa.literal(1)).select_from(keys.table).where(*now.joins(keys.keys), moved)
        tx.execute(sa.delete(now.table).where(stale.exists()))
    return tuple(conflicts)


def _update(tx: Connection, rule: Rule, target: Target, now: WorkTable) -> int:
    table = target.clause()
    n = now.table.c
    statement = (
        sa.update(table)
        .where(*now.joins([table.c[k] for k in target.key]), n.missing == 0)
        .values({target.quantity: n.expected})
    )
    updated = tx.execute(statement).rowcount
    wanted = tx.execute(sa.select(sa.func.count()).select_from(now.table).where(n.missing == 0)).scalar_one()
    if updated != wanted:
        raise DatabaseError(f"rule {rule.name!r}: expected to update {wanted} rows but updated {updated}; rolled back")
    return updated


def _insert_missing(tx: Connection, rule: Rule, target: Target, now: WorkTable, run_id: int) -> int:
    """Create rows for keys only the sources know; each row's full image goes to the audit."""
    n = now.table.c
    defaults = dict(rule.recorded.insert_defaults)
    rows = [
        dict(zip(target.key, found[:-1], strict=True)) | {target.quantity: found[-1]} | defaults
        for found in tx.execute(sa.select(*now.keys, n.expected).where(n.missing == 1))
    ]
    if not rows:
        return 0
    tx.execute(sa.insert(target.clause(*defaults)), rows)
    changes = [
        change_row(run_id, rule.name, target, [row[k] for k in target.key], "insert")
        | {"after_value": str(row[target.quantity]), "row_image": to_json(row)}
        for row in rows
    ]
    tx.execute(sa.insert(audit.changes), changes)
    return len(rows)


def _record_updates(tx: Connection, rule: Rule, target: Target, now: WorkTable, run_id: int) -> None:
    """Pre- and post-images of every updated row, copied from the work table in one statement."""
    n = now.table.c
    fixed = change_row(run_id, rule.name, target, None, "update")
    select = sa.select(
        *[sa.literal(value) for value in fixed.values()],
        dialect_for(tx).json_array(*now.keys),
        sa.cast(n.observed, sa.Text),
        sa.cast(n.expected, sa.Text),
    ).where(n.missing == 0)
    tx.execute(sa.insert(audit.changes).from_select([*fixed, "key", "before_value", "after_value"], select))


def change_row(run_id: int, rule: str, target: Target, key: list[Any] | None, op: str) -> dict[str, Any]:
    """The fixed part of a `trueup_changes` row (plus the key as JSON, when given)."""
    row = {
        "run_id": run_id,
        "rule": rule,
        "table_name": target.table,
        "key_columns": json.dumps(list(target.key)),
        "quantity_column": target.quantity,
        "op": op,
    }
    return row | ({"key": to_json(key)} if key is not None else {})


def _verify(connection: Connection, rule: Rule, outcome: RuleApplied, now: WorkTable) -> RuleApplied:
    scan = RuleScan(connection, rule, scope=Scope(key_table=now.table), keep=0)
    residual = scan.result().abs_drift
    if connection.in_transaction():
        connection.rollback()
    return outcome._replace(residual=residual)


def _drop_all(connection: Connection, tables: list[tuple[WorkTable, WorkTable]]) -> None:
    with connection.begin():
        for pair in tables:
            for table in pair:
                table.drop()


def _text(value: Any) -> str:
    number = as_decimal(value)
    return "nothing" if number is None else str(number)
