"""Apply: correct every drifted key of the chosen rules in one transaction, with its audit, then verify.

Inside one READ COMMITTED transaction (SQLite: BEGIN IMMEDIATE), per rule:

1. the corrections are computed by the comparison query straight into a
   temporary table `trueup_now_N` (`INSERT … SELECT`: observed recorded
   figure, expected figure, whether a row must be inserted). For a saved plan
   the comparison is narrowed to the plan's keys, and keys whose figures
   moved since the plan are refused and listed: the user reviewed other numbers;
2. keys with an error-severity finding (a negative expected figure) are taken
   out of that table and listed as left out, unless `include_flagged`; the
   guard rails (`--max-changes`, `--max-abs-delta`) are checked on what is
   left, and the file backup is taken, before any lock is held;
3. the recorded rows of those keys are locked (`SELECT … FOR UPDATE`, in key
   order) and compared with the figure observed in step 1. A row that moved in
   between was written by someone else: it is recomputed now that it is
   locked (or, for a saved plan, refused);
4. one `UPDATE … JOIN trueup_now_N` sets recorded = expected (absolute, so a
   second apply finds nothing to do), missing rows are inserted where the rule
   allows it, and the pre/post images are copied to `trueup_changes` in one
   `INSERT … SELECT`, beside the `trueup_runs` row.

Why nothing is lost beside live writers: a sale that updates the cached
figure either committed before our lock (then the row moved and is recomputed
under the lock, seeing the sale), or waits for our commit and then applies its
own `quantity = quantity - n` on top of the corrected figure. A deadlock
aborts our transaction cleanly and it is retried from the start.

After commit the applied keys are checked again (verify); a residual is
recorded on the run and reported.
"""

from __future__ import annotations

import json
import logging
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import DBAPIError

from trueup.config import Config, Rule
from trueup.db import dialect_for, driver_message, redact, user_condition
from trueup.errors import DatabaseError, RefusedError, UsageError
from trueup.paths import DEFAULT_BACKUP_DIRECTORY
from trueup.reconcile import audit, images
from trueup.reconcile.backup import Backup, backup_tables
from trueup.reconcile.check import RuleScan, typed_scope
from trueup.reconcile.diagnose import mostly_drifted, mostly_drifted_finding
from trueup.reconcile.drift import Flagged, as_decimal
from trueup.reconcile.guard import Limits, confirm_writes, production_reason
from trueup.reconcile.plan import Plan, RulePlan, check_plan_fits, make_plan
from trueup.reconcile.query import EVERYTHING, Scope, comparison, in_key_table, key_in, recorded_count
from trueup.reconcile.resolve import resolve_rule
from trueup.reconcile.target import Target
from trueup.reconcile.worktable import FLAG, QUANTITY, WorkTable, drop_all

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
    left_out: tuple[Flagged, ...] = ()  # drifted keys not written for their error-severity findings
    warnings: tuple[str, ...] = ()  # e.g. most items drifted: the likeliest config mistake


class ApplyResult(NamedTuple):
    run_id: int | None
    rules: tuple[RuleApplied, ...]
    status: str  # nothing to do | already applied | refused | verified | residual
    backup: Path | None = None
    warnings: tuple[str, ...] = ()
    applied_as: int | None = None  # the run that already applied this saved plan

    @property
    def updated(self) -> int:
        return sum(r.updated for r in self.rules)

    @property
    def inserted(self) -> int:
        return sum(r.inserted for r in self.rules)

    @property
    def changed(self) -> int:
        return self.updated + self.inserted

    @property
    def conflicts(self) -> tuple[Conflict, ...]:
        return tuple(c for r in self.rules for c in r.conflicts)

    @property
    def residual(self) -> Decimal:
        return sum((r.residual for r in self.rules), Decimal(0))

    @property
    def left_out(self) -> tuple[Flagged, ...]:
        return tuple(f for r in self.rules for f in r.left_out)

    @property
    def exit_code(self) -> int:
        return 1 if self.conflicts or self.residual or self.left_out else 0


Phase = Callable[[str], None]
Progress = Callable[[int, int], None]
BeforeCommit = Callable[[Connection, int, list[RuleApplied]], None]


class _Job(NamedTuple):
    """One rule to correct: everything in `scope` (worst `limit` first), or a saved plan's keys."""

    rule: Rule
    target: Target
    scope: Scope
    saved: RulePlan | None
    include_flagged: bool = False
    chunk: Sequence[tuple[Any, ...]] = ()  # a chunked run's keys for this transaction (within `scope`'s where)


class _Written(NamedTuple):
    run_id: int
    outcomes: list[RuleApplied]
    backup: Backup


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
    include_flagged: bool = False,
    backup_dir: Path | None = DEFAULT_BACKUP_DIRECTORY,
    yes: bool = False,
    confirm: Callable[[str], bool] | None = None,
    triggered_by: str = "cli",
    lock_timeout: float = 30,
    phase: Phase = lambda name: None,
    before_commit: BeforeCommit | None = None,
    chunk_size: int | None = None,
    progress: Progress | None = None,
) -> ApplyResult:
    """Correct the drift of the selected rules (or apply a saved `plan`), back up, audit, verify.

    Keys with an error-severity finding are left out (and listed) unless `include_flagged`; a
    saved plan is applied as reviewed. `backup_dir=None` skips the file backup; row pre-images
    are always kept in the audit.
    On a database that looks like production, `yes` or `confirm(question)` must agree first.
    `before_commit(transaction, run_id, outcomes)` may write more in the same transaction.
    `chunk_size=N` records the run first, then writes key-ordered chunks of N keys, each in a
    transaction of its own, calling `progress(chunks_done, chunks)` after each; see `resume`.
    """
    if chunk_size is not None and (plan is not None or limit is not None or chunk_size < 1):
        raise UsageError("--chunk-size takes a positive N and corrects every drifted key: not with --plan or --limit")
    if plan is not None:
        check_plan_fits(plan, config, redact(url), "plan")
        earlier = audit.applied_plan(connection, plan.sha256) if plan.sha256 else None
        if earlier is not None:
            return ApplyResult(None, (), "already applied", applied_as=earlier)
        limits.check_plan(plan)
    pattern = config.database.production_pattern
    if production_reason(url, pattern) and not yes:
        if confirm is not None:  # someone can answer: show them how much would be written
            phase("planning")
            preview = plan or make_plan(
                connection,
                config,
                database=redact(url),
                rules=rules,
                scope=scope,
                limit=limit,
                include_flagged=include_flagged,
            )
            if not preview.changes:
                return ApplyResult(None, _unwritten(preview), "nothing to do")
        what = f"write {preview.changes} correction(s)" if confirm is not None else "write corrections"
        confirm_writes(url, pattern, what, yes=yes, confirm=confirm)
    if plan is not None:
        selected = [(config.rule(r.rule), r) for r in plan.rules if r.corrections]
    else:
        selected = [(rule, None) for rule in config.select_rules(rules)]
    if not selected:
        return ApplyResult(None, _unwritten(plan), "nothing to do")
    jobs = _jobs(connection, selected, scope, include_flagged)
    audit.ensure_tables(connection)
    if chunk_size is not None:
        chunked = _Chunked(jobs, chunk_size, scope, include_flagged, triggered_by, lock_timeout, phase, progress)
        return _start_chunked(connection, config, url, chunked, limits, backup_dir)
    return _apply(
        connection, config, url, jobs, plan, limit, limits, backup_dir, triggered_by, lock_timeout, phase, before_commit
    )


def _jobs(
    connection: Connection, selected: list[tuple[Rule, RulePlan | None]], scope: Scope, include_flagged: bool
) -> list[_Job]:
    jobs = []
    for rule, saved in selected:
        resolved = resolve_rule(connection, rule)
        scoped = typed_scope(connection, resolved, scope)
        jobs.append(_Job(resolved, Target.of(resolved), scoped, saved, include_flagged or saved is not None))
    return jobs


def _unwritten(plan: Plan | None) -> tuple[RuleApplied, ...]:
    """The rules of a plan with nothing to write, named, with the keys it left out."""
    rules = plan.rules if plan is not None else ()
    return tuple(RuleApplied(r.rule, 0, 0, (), left_out=r.left_out) for r in rules)


def _apply(
    connection: Connection,
    config: Config,
    url: URL,
    jobs: list[_Job],
    plan: Plan | None,
    limit: int | None,
    limits: Limits,
    backup_dir: Path | None,
    triggered_by: str,
    lock_timeout: float,
    phase: Phase,
    before_commit: BeforeCommit | None,
    run_id: int | None = None,
) -> ApplyResult:
    """One transaction: a whole run, or (given the chunked `run_id`) one chunk of it."""
    dialect = dialect_for(connection)

    def file_backup() -> Backup:
        if backup_dir is None:
            return Backup(None, None)
        phase("backing up")
        return backup_tables(connection, url, [job.rule.recorded.table for job in jobs], backup_dir)

    for attempt in range(1, ATTEMPTS + 1):
        nows: list[WorkTable] = []
        try:
            with _dropping(connection, nows), dialect.write_transaction(connection, lock_timeout) as tx:
                written = _write(tx, config, jobs, plan, limit, limits, triggered_by, file_backup, phase, nows, run_id)
                if before_commit is not None:
                    before_commit(tx, written.run_id, written.outcomes)
            break
        except _NothingWritten as nothing:
            warnings = nothing.backup.warnings + _advice(nothing.outcomes)
            return ApplyResult(None, nothing.outcomes, nothing.status, nothing.backup.path, warnings)
        except DBAPIError as error:
            if attempt < ATTEMPTS and dialect.is_retryable(error):
                log.warning("apply: %s; retrying (attempt %d of %d)", driver_message(error), attempt + 1, ATTEMPTS)
                continue
            raise DatabaseError(f"apply failed and was rolled back: {driver_message(error)}") from None
    return _verified(connection, jobs, written, phase, settle=run_id is None)


@contextmanager
def _dropping(connection: Connection, tables: list[WorkTable]) -> Iterator[None]:
    """Drop the work tables on the way out (MySQL keeps temporary tables across a rollback)."""
    try:
        yield
    except BaseException:
        if connection.in_transaction():
            connection.rollback()
        drop_all(connection, tables)
        raise


class _NothingWritten(Exception):
    """Nothing to correct, or every correction refused: roll back instead of recording an empty run."""

    def __init__(self, outcomes: tuple[RuleApplied, ...], status: str, backup: Backup):
        self.outcomes, self.status, self.backup = outcomes, status, backup


def _write(
    tx: Connection,
    config: Config,
    jobs: list[_Job],
    plan: Plan | None,
    limit: int | None,
    limits: Limits,
    triggered_by: str,
    file_backup: Callable[[], Backup],
    phase: Phase,
    nows: list[WorkTable],
    chunk_of: int | None,
) -> _Written:
    run_id = chunk_of or _start(tx, config, jobs, triggered_by, plan)
    refused: list[tuple[Conflict, ...]] = []
    flagged: list[tuple[Flagged, ...]] = []
    for index, job in enumerate(jobs):
        phase(f"computing {job.rule.name}")
        now = WorkTable(
            tx, f"trueup_now_{index}", job.target, {"observed": QUANTITY, "expected": QUANTITY, "missing": FLAG}
        )
        nows.append(now.create())
        refused.append(_candidates(tx, job, now, limit, index))
        flagged.append(() if job.include_flagged else _leave_out_flagged(tx, now))
    advice = [
        _diagnosis(tx, job, now, flagged_keys, limit)
        for job, now, flagged_keys in zip(jobs, nows, flagged, strict=True)
    ]
    changes, worst = _size(tx, jobs, nows)
    if not changes:
        outcomes = tuple(
            RuleApplied(job.rule.name, 0, 0, c, left_out=f, warnings=a)
            for job, c, f, a in zip(jobs, refused, flagged, advice, strict=True)
        )
        raise _NothingWritten(outcomes, "refused" if any(refused) else "nothing to do", Backup(None, None))
    limits.check(changes, worst)
    made = file_backup()
    outcomes = []
    for job, now, conflicts, left_out, warnings in zip(jobs, nows, refused, flagged, advice, strict=True):
        phase(f"applying {job.rule.name}")
        so_far = RuleApplied(job.rule.name, 0, 0, conflicts, left_out=left_out, warnings=warnings)
        outcomes.append(_write_rule(tx, job, now, run_id, so_far))
    if not any(o.updated or o.inserted for o in outcomes):
        raise _NothingWritten(tuple(outcomes), "refused", made)
    if chunk_of is None:
        audit.finish_run(tx, run_id, **_counts(outcomes), status="applied")
    return _Written(run_id, outcomes, made)


def _start(tx: Connection, config: Config, jobs: list[_Job], triggered_by: str, plan: Plan | None = None) -> int:
    return audit.start_run(
        tx,
        kind="apply",
        rule=",".join(job.rule.name for job in jobs),
        triggered_by=triggered_by,
        config_sha256=config.sha256,
        plan_sha256=plan.sha256 if plan else None,
    )


def _counts(outcomes: Sequence[RuleApplied]) -> dict[str, int]:
    return {
        "updated": sum(o.updated for o in outcomes),
        "inserted": sum(o.inserted for o in outcomes),
        "conflicts": sum(len(o.conflicts) for o in outcomes),
    }


def _write_rule(tx: Connection, job: _Job, now: WorkTable, run_id: int, outcome: RuleApplied) -> RuleApplied:
    """Lock, settle rows that moved, write one rule's corrections and their audit; `outcome` so far."""
    now.lock_targets()
    conflicts = outcome.conflicts + _settle_moved(tx, job, now)
    left_out = outcome.left_out
    if not job.include_flagged:
        left_out += _leave_out_flagged(tx, now)  # a key recomputed under lock may have turned negative
    conflicts += _refuse_hidden(tx, job.rule, job.target, now)
    updated = _update(tx, job.rule, job.target, now)
    inserted = _insert_missing(tx, job.rule, job.target, now, run_id) if job.rule.recorded.insert_missing else 0
    _record_updates(tx, job.rule, job.target, now, run_id)
    return outcome._replace(updated=updated, inserted=inserted, conflicts=conflicts, left_out=left_out)


def _candidates(tx: Connection, job: _Job, now: WorkTable, limit: int | None, index: int) -> tuple[Conflict, ...]:
    """Fill `now` with the corrections to make; for a saved plan, return the keys refused as moved."""
    columns = [c.name for c in now.table.c]
    if job.saved is None and not job.chunk:
        tx.execute(sa.insert(now.table).from_select(columns, _corrections(tx, job.rule, job.scope, limit)))
        now.analyze()
        return ()
    planned = {"planned_recorded": QUANTITY, "planned_expected": QUANTITY} if job.saved is not None else {}
    keys = WorkTable(tx, f"trueup_keys_{index}", job.target, planned)
    if job.saved is not None:
        keys.create().fill(_planned_rows(tx, job.rule, job.target, job.saved))
    else:  # a table of keys, not one bound parameter per key and per branch of the comparison
        keys.create().fill({f"k{i}": value for i, value in enumerate(key)} for key in job.chunk)
    try:
        scope = Scope(key_table=keys.table, where=job.scope.where)
        tx.execute(sa.insert(now.table).from_select(columns, _corrections(tx, job.rule, scope, None)))
        return _refuse_moved(tx, job.rule, keys, now) if job.saved is not None else ()
    finally:
        keys.drop()


def _corrections(tx: Connection, rule: Rule, scope: Scope, limit: int | None) -> sa.Select:
    """Keys of `scope` that need a correction: key, observed, expected, missing (worst first if limited)."""
    scoped = comparison(rule, tx.dialect, dialect_for(tx), scope).order_by(None).subquery("c")
    keys = [scoped.c[f"k{i}"] for i in range(len(rule.recorded.key))]
    writable = scoped.c.rec_rows <= 1 if rule.recorded.insert_missing else scoped.c.rec_rows == 1
    query = sa.select(*keys, scoped.c.recorded, scoped.c.expected, sa.case((scoped.c.rec_rows == 0, 1), else_=0)).where(
        scoped.c.expected != scoped.c.recorded, scoped.c.within == 0, writable, *[k.is_not(None) for k in keys]
    )
    if limit is not None:
        query = query.order_by(sa.func.abs(scoped.c.expected - scoped.c.recorded).desc(), *keys).limit(limit)
    return query


def _diagnosis(
    tx: Connection, job: _Job, now: WorkTable, flagged: tuple[Flagged, ...], limit: int | None
) -> tuple[str, ...]:
    """A warning when a whole-rule repair would correct most of the rule's items (see `diagnose`)."""
    if job.saved is not None or job.chunk or limit is not None or not job.scope.is_everything:
        return ()
    drifted = tx.execute(sa.select(sa.func.count()).select_from(now.table)).scalar_one() + len(flagged)
    items = tx.execute(recorded_count(job.rule, tx.dialect)).scalar_one()
    finding = mostly_drifted_finding(tx, job.rule) if mostly_drifted(drifted, items) else None
    return (f"rule {job.rule.name!r}: {finding.message}",) if finding else ()


def _leave_out_flagged(tx: Connection, now: WorkTable) -> tuple[Flagged, ...]:
    """Take the keys with an error-severity finding out of `now`, and list them.

    A key that can be written (one recorded row or none, a non-NULL key) has one possible error
    finding, `negative_expected` (see `trueup.reconcile.drift.classify`): a figure below zero.
    """
    n = now.table.c
    negative = n.expected < 0
    query = sa.select(*now.keys, n.observed, n.expected).where(negative).order_by(*now.keys)
    flagged = tuple(
        Flagged(tuple(row[:-2]), as_decimal(row[-2]) or Decimal(0), as_decimal(row[-1]), ("negative_expected",))
        for row in tx.execute(query)
    )
    if flagged:
        tx.execute(sa.delete(now.table).where(negative))
    return flagged


def _size(tx: Connection, jobs: list[_Job], nows: list[WorkTable]) -> tuple[int, tuple[str, tuple, Decimal] | None]:
    """How many corrections, and the largest one (rule, key, delta), for the guard rails."""
    changes, worst = 0, None
    for job, now in zip(jobs, nows, strict=True):
        changes += tx.execute(sa.select(sa.func.count()).select_from(now.table)).scalar_one()
        delta = now.table.c.expected - now.table.c.observed
        top = tx.execute(sa.select(*now.keys, delta).order_by(sa.func.abs(delta).desc()).limit(1)).first()
        if top is not None and (worst is None or abs(as_decimal(top[-1])) > abs(worst[2])):
            worst = (job.rule.name, tuple(top[:-1]), as_decimal(top[-1]))
    return changes, worst


def _settle_moved(tx: Connection, job: _Job, now: WorkTable) -> tuple[Conflict, ...]:
    """Rows someone changed between computing and locking: recompute them (now locked), or refuse them."""
    table = job.target.clause()
    n, t = now.table.c, table.c
    first = t[job.target.key[0]]
    moved = sa.or_(
        sa.and_(n.missing == 0, sa.or_(first.is_(None), t[job.target.quantity].is_distinct_from(n.observed))),
        sa.and_(n.missing == 1, first.is_not(None)),
    )
    joined = now.table.outerjoin(table, sa.and_(*now.joins([t[k] for k in job.target.key])))
    keys = [tuple(row) for row in tx.execute(sa.select(*now.keys).select_from(joined).where(moved))]
    if not keys:
        return ()
    columns = [c.name for c in now.table.c]
    tx.execute(sa.delete(now.table).where(key_in(now.keys, keys, tx.dialect)))
    if job.saved is not None:
        return tuple(Conflict(job.rule.name, key, "changed while the plan was being applied") for key in keys)
    log.info("rule %s: %d row(s) changed while applying; recomputed under lock", job.rule.name, len(keys))
    tx.execute(sa.insert(now.table).from_select(columns, _corrections(tx, job.rule, Scope(keys=keys), None)))
    return ()


def _verified(connection: Connection, jobs: list[_Job], written: _Written, phase: Phase, settle: bool) -> ApplyResult:
    """Check the written keys again; `settle` records the outcome on the run (a chunked run does at its end)."""
    phase("verifying")
    tables = [WorkTable(connection, f"trueup_now_{i}", job.target, {}) for i, job in enumerate(jobs)]
    outcomes = [
        outcome._replace(residual=_residual(connection, job.rule, now.table))
        for job, outcome, now in zip(jobs, written.outcomes, tables, strict=True)
    ]
    residual = sum((o.residual for o in outcomes), Decimal(0))
    status = "residual" if residual else "verified"
    if settle:
        with dialect_for(connection).write_transaction(connection):
            audit.set_status(connection, written.run_id, status=status, residual=str(residual))
    drop_all(connection, tables)
    warnings = written.backup.warnings + _advice(outcomes)
    return ApplyResult(written.run_id, tuple(outcomes), status, written.backup.path, warnings)


def _advice(outcomes: Sequence[RuleApplied]) -> tuple[str, ...]:
    return tuple(warning for outcome in outcomes for warning in outcome.warnings)


def _residual(connection: Connection, rule: Rule, keys: sa.TableClause) -> Decimal:
    residual = RuleScan(connection, rule, scope=Scope(key_table=keys), keep=0).result().abs_drift
    if connection.in_transaction():
        connection.rollback()
    return residual


def _planned_rows(tx: Connection, rule: Rule, target: Target, rule_plan: RulePlan) -> Iterator[dict[str, Any]]:
    keys = (c.key for c in rule_plan.corrections)
    try:
        for key, correction in zip(target.coerce_keys(tx, keys), rule_plan.corrections, strict=True):
            row = {f"k{i}": value for i, value in enumerate(key)}
            yield row | {"planned_recorded": correction.recorded, "planned_expected": correction.expected}
    except ValueError as error:
        raise UsageError(f"rule {rule.name!r}: a key in the plan does not fit its column: {error}") from None


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
    for row in tx.execute(query):
        key, (planned_recorded, planned_expected, found, observed, expected) = (
            tuple(row[: keys.width]),
            row[keys.width :],
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


def _refuse_hidden(tx: Connection, rule: Rule, target: Target, now: WorkTable) -> tuple[Conflict, ...]:
    """Keys whose table holds a row the rule's `where` hides. A write goes by key, so it would reach that
    row too: an UPDATE would rewrite it, an INSERT would add a second row. They are refused and listed."""
    n = now.table.c
    table = target.clause()
    same_key = now.joins([table.c[k] for k in target.key])
    hidden = []
    if rule.recorded.insert_missing:  # no row within the where: any row of the key is outside it
        hidden.append(sa.and_(n.missing == 1, sa.select(sa.literal(1)).select_from(table).where(*same_key).exists()))
    if rule.recorded.where:
        outside = sa.not_(sa.func.coalesce(user_condition(rule.recorded.where), sa.false()))
        row = sa.select(sa.literal(1)).select_from(table).where(*same_key, outside)
        hidden.append(sa.and_(n.missing == 0, row.exists()))
    if not hidden:
        return ()
    refused = sa.or_(*hidden)
    found = [tuple(row) for row in tx.execute(sa.select(*now.keys, n.missing).where(refused))]
    if not found:
        return ()
    tx.execute(sa.delete(now.table).where(refused))
    reasons = {
        0: f"not updated: {target.table} also holds a row with this key outside the rule's where, "
        "which a write by key would change too; add the column that tells them apart to the key",
        1: f"not inserted: {target.table} already holds a row with this key (outside the rule's where)",
    }
    return tuple(Conflict(rule.name, row[:-1], reasons[int(row[-1])]) for row in found)


def _insert_missing(tx: Connection, rule: Rule, target: Target, now: WorkTable, run_id: int) -> int:
    """Create rows for keys only the sources know; each row's full image, as stored, goes to the audit.

    No row held these keys before (see `_refuse_present`), so the rows holding them now are exactly
    the ones inserted: read back whole (with any id or default the database filled in), they let
    undo tell the run's row from any other.
    """
    n = now.table.c
    defaults = dict(rule.recorded.insert_defaults)
    rows = [
        dict(zip(target.key, found[:-1], strict=True)) | {target.quantity: found[-1]} | defaults
        for found in tx.execute(sa.select(*now.keys, n.expected).where(n.missing == 1))
    ]
    if not rows:
        return 0
    tx.execute(sa.insert(target.clause(*defaults)), rows)
    full = target.raw_rows(tx)
    written = tx.execute(
        sa.select(full).where(in_key_table([full.c[k] for k in target.key], now.table, n.missing == 1))
    )
    stored = [dict(row._mapping) for row in written]  # as stored: ids and defaults included
    if len(stored) != len(rows):
        raise DatabaseError(
            f"rule {rule.name!r}: inserted {len(rows)} rows but {len(stored)} hold their keys; rolled back"
        )
    images.record_rows(tx, run_id, rule.name, target, "insert", stored)
    return len(rows)


def _record_updates(tx: Connection, rule: Rule, target: Target, now: WorkTable, run_id: int) -> None:
    """Pre- and post-images of every updated row, copied from the work table in one statement."""
    n = now.table.c
    fixed = images.change_row(run_id, rule.name, target, None, "update")
    select = sa.select(
        *[sa.literal(value) for value in fixed.values()],
        dialect_for(tx).json_array(*now.keys),
        sa.cast(n.observed, sa.Text),
        sa.cast(n.expected, sa.Text),
    ).where(n.missing == 0)
    tx.execute(sa.insert(audit.changes).from_select([*fixed, "key", "before_value", "after_value"], select))


def _text(value: Any) -> str:
    number = as_decimal(value)
    return "nothing" if number is None else str(number)


# Chunked runs -------------------------------------------------------------------------------------------------


class _Chunked(NamedTuple):
    """A chunked run's settings: what `apply --chunk-size` was asked, and how to report along the way."""

    jobs: list[_Job]
    chunk_size: int
    scope: Scope  # as given (keys untyped), to record and to narrow each chunk with its `where`
    include_flagged: bool
    triggered_by: str
    lock_timeout: float
    phase: Phase
    progress: Progress | None


def resume(
    connection: Connection,
    config: Config,
    url: URL,
    run_id: int,
    *,
    yes: bool = False,
    confirm: Callable[[str], bool] | None = None,
    triggered_by: str = "cli",
    lock_timeout: float = 30,
    phase: Phase = lambda name: None,
    progress: Progress | None = None,
) -> ApplyResult:
    """Finish a chunked run that was interrupted: exactly its chunks not yet committed, their deltas recomputed.

    Only an unfinished chunked apply can be resumed (UsageError for another run, RefusedError for a finished one).
    """
    audit.ensure_tables(connection)
    run = audit.get_run(connection, run_id)
    found = audit.chunked_options(connection, run_id)
    if found is None:
        raise UsageError(f"run {run_id} is not a chunked apply (apply --chunk-size): there is nothing to resume")
    if run.status != "applying":
        raise RefusedError(f"run {run_id} is not unfinished (it is {run.status}): there is nothing to resume")
    confirm_writes(url, config.database.production_pattern, f"resume run {run_id}", yes=yes, confirm=confirm)
    chunk_size, options = found
    scope = Scope(keys=tuple(tuple(key) for key in options["keys"]), where=options["where"])
    selected = [(rule, None) for rule in config.select_rules(run.rule.split(","))]
    jobs = _jobs(connection, selected, scope, options["include_flagged"])
    chunked = _Chunked(jobs, chunk_size, scope, options["include_flagged"], triggered_by, lock_timeout, phase, progress)
    phase("planning")
    pending, total = audit.pending_chunks(connection, run_id)
    return _write_chunks(connection, config, run_id, chunked, _plan(connection, config, url, chunked), pending, total)


def _start_chunked(
    connection: Connection, config: Config, url: URL, chunked: _Chunked, limits: Limits, backup_dir: Path | None
) -> ApplyResult:
    """Plan the whole run (the guard rails see all of it), back up, record the run and its chunks, write them."""
    chunked.phase("planning")
    planned = _plan(connection, config, url, chunked)
    limits.check_plan(planned)
    if not planned.changes:
        return ApplyResult(None, _unwritten(planned), "nothing to do")
    made = Backup(None, None)
    if backup_dir is not None:
        chunked.phase("backing up")
        made = backup_tables(connection, url, [job.rule.recorded.table for job in chunked.jobs], backup_dir)
    chunks = _chunks(planned, chunked.chunk_size)
    scope = chunked.scope
    options = {
        "keys": [list(key) for key in scope.keys],
        "where": scope.where,
        "include_flagged": chunked.include_flagged,
    }
    with dialect_for(connection).write_transaction(connection, chunked.lock_timeout) as tx:
        run_id = _start(tx, config, chunked.jobs, chunked.triggered_by)
        audit.record_chunks(tx, run_id, chunked.chunk_size, json.dumps(options, default=str), chunks)
    result = _write_chunks(connection, config, run_id, chunked, planned, chunks, len(chunks))
    return result._replace(backup=made.path, warnings=made.warnings + result.warnings)


def _plan(connection: Connection, config: Config, url: URL, chunked: _Chunked) -> Plan:
    rules = [job.rule.name for job in chunked.jobs]
    return make_plan(
        connection,
        config,
        database=redact(url),
        rules=rules,
        scope=chunked.scope,
        include_flagged=chunked.include_flagged,
    )


def _chunks(planned: Plan, size: int) -> list[audit.Chunk]:
    """Each rule's corrections in key order, cut into chunks of `size` keys, numbered from 1 across the rules."""
    chunks: list[audit.Chunk] = []
    for rule_plan in planned.rules:
        keys = sorted(c.key for c in rule_plan.corrections)
        for start in range(0, len(keys), size):
            part = keys[start : start + size]
            chunks.append(audit.Chunk(len(chunks) + 1, rule_plan.rule, part[0], part[-1]))
    return chunks


def _write_chunks(
    connection: Connection,
    config: Config,
    run_id: int,
    chunked: _Chunked,
    planned: Plan,
    pending: list[audit.Chunk],
    total: int,
) -> ApplyResult:
    """Write each pending chunk: the keys `planned` finds drifted between its first and last key, inclusive."""
    jobs = {job.rule.name: job for job in chunked.jobs}
    typed = {name: job.target.key_coercer(connection) for name, job in jobs.items()}
    drifted = {r.rule: sorted(c.key for c in r.corrections) for r in planned.rules}
    results = []
    for done, chunk in enumerate(pending, start=total - len(pending) + 1):
        keys = drifted[chunk.rule]
        part = keys[
            bisect_left(keys, typed[chunk.rule](chunk.first)) : bisect_right(keys, typed[chunk.rule](chunk.last))
        ]
        results.append(_write_chunk(connection, config, run_id, jobs[chunk.rule], part, chunk.number, chunked))
        if chunked.progress is not None:
            chunked.progress(done, total)
    outcomes = tuple(
        _rule_total(r, [o for result in results for o in result.rules if o.rule == r.rule]) for r in planned.rules
    )
    residual = sum((o.residual for o in outcomes), Decimal(0))
    status = "residual" if residual else "verified"
    with dialect_for(connection).write_transaction(connection, chunked.lock_timeout) as tx:
        audit.finish_run(tx, run_id, status=status, residual=str(residual))
    return ApplyResult(run_id, outcomes, status, warnings=_advice(outcomes))


def _write_chunk(
    connection: Connection, config: Config, run_id: int, job: _Job, keys: list[tuple], number: int, chunked: _Chunked
) -> ApplyResult:
    """One chunk in one transaction (apply's own), marked committed in it; so is a chunk left nothing to write."""

    def commit(tx: Connection, _run: int, outcomes: list[RuleApplied]) -> None:
        audit.commit_chunk(tx, run_id, number, **_counts(outcomes))

    result = ApplyResult(None, (), "nothing to do")
    if keys:
        result = _apply(
            connection, config, connection.engine.url, [job._replace(chunk=keys)], None, None, NO_LIMITS, None,
            chunked.triggered_by, chunked.lock_timeout, chunked.phase, commit, run_id,
        )  # fmt: skip
    if result.run_id is None:  # writers corrected every key of it meanwhile, or every key was refused
        with dialect_for(connection).write_transaction(connection, chunked.lock_timeout) as tx:
            audit.commit_chunk(tx, run_id, number, conflicts=len(result.conflicts))
    return result


def _rule_total(rule_plan: RulePlan, parts: list[RuleApplied]) -> RuleApplied:
    """One rule's outcome over its chunks, with the keys the plan left out."""
    return RuleApplied(
        rule_plan.rule,
        sum(p.updated for p in parts),
        sum(p.inserted for p in parts),
        tuple(c for p in parts for c in p.conflicts),
        sum((p.residual for p in parts), Decimal(0)),
        rule_plan.left_out + tuple(f for p in parts for f in p.left_out),
        tuple(w for p in parts for w in p.warnings),
    )
