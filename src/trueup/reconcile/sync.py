"""Sync: keep figures true with rounds that never overlap, look only at what changed, and remember.

A *round* checks one rule (and with `apply` repairs it, as a run) under a
named lock, so two rounds of the same rule on the same database never run at
once; a round that finds the lock taken waits up to `wait` seconds. Locks
belong to a database session (PostgreSQL advisory locks, MySQL GET_LOCK) or,
on SQLite, to a row naming a live process: a crashed holder never blocks
anyone for long.

Rounds come in three kinds:

* **full**: the whole rule, as `check` does. The first round, and every
  `full_every`-th round after it, is full: it catches changes that leave no
  trace in a timed source (an edit to the figure, a status flipped in place).
* **incremental**: only the keys touched since the last round. Each source
  with a `time` (or `sequence`) column has a watermark in `trueup_watermarks`:
  the newest value a round saw. The next round collects every key with a
  record past `watermark - overlap` into a temporary table and checks just
  those keys. The overlap is what makes late and out-of-order records safe: a
  transaction that stamped its row at 10:00:00 but committed at 10:00:40 is
  still picked up, as long as it commits within `overlap` of its timestamp.
  The source's `where` is deliberately not applied when collecting keys, so a
  record that *left* the filter (soft-deleted, cancelled) still marks its key.
  A rule with no timed source whose capture guard is installed (`trueup
  guard install --mode capture`) has incremental rounds too: the keys its
  triggers queued, and the open ones.
* **keys**: the keys a caller names (`trueup sync --key`, `trueup.sync()`), for
  hooks called right after a sale or a purchase.

Nothing found is forgotten, and no hook's key is lost:

* **open drift.** Drift a round found and did not repair (it only checked, it
  was over its limit, its repair left a residual) stays *open* in
  `trueup_open_drift` (see `trueup.reconcile.history`). Every full or
  incremental round takes the open keys besides what it would look at anyway,
  so an incremental round never reports "clean" past drift a round before it
  left behind, and counts it until it is repaired.
* **the queue.** A round of keys that finds the lock taken does not skip: it
  queues its keys in `trueup_dirty` (see `trueup.reconcile.queue`) and returns
  `queued`. Every round takes every key queued before it began; the holder of
  the lock, before letting go, runs a round of the keys queued while it ran,
  and again until none came. After letting go it looks once more and, if keys
  came in that last moment and the lock is free, takes it again: a key queued
  while the holder was letting go is taken by the holder or by the queueing
  caller itself, which retries the lock once after queueing. Keys leave the
  queue only in the transaction that commits the round that took them.

Rounds that repair on their own have **limits**: at most `max_changes` rows
(default 1,000) and `max_percent` of the rule's items (default 5 %), whichever
is smaller, set under `[sync]` or a rule's `[rules.sync]`, or overridden by
`SyncOptions.max_changes` (`--max-changes`). A round over its limit writes
nothing, records why, and leaves the drift open: a first round that would
rewrite 18,970 rows of a 30,000-row table is a config mistake more often than
18,970 bugs.

Every round is recorded in `trueup_rounds` with its drifted keys in
`trueup_drift_history`; when the round repairs, those rows, the open drift,
the queue, the watermarks and the repair commit in one transaction. A key that
drifts again within `recurring_window` of its last repair is *recurring*,
reported with the records its timed sources gained since that repair: the
hint that points at the code path that skips the cached update.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_CEILING, Decimal
from pathlib import Path
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from trueup.config import Config, Rule, Source
from trueup.db import column_ref, connect, dialect_for, table_ref, user_sql
from trueup.errors import RefusedError, UsageError
from trueup.expiring import PerEngine
from trueup.guard.runs import captures
from trueup.reconcile import history, queue
from trueup.reconcile.apply import RuleApplied, apply
from trueup.reconcile.audit import now
from trueup.reconcile.check import RuleScan, typed_scope
from trueup.reconcile.drift import SAMPLE_SIZE, DriftRow, Finding, finding
from trueup.reconcile.guard import Limits
from trueup.reconcile.query import EVERYTHING, Scope, known_keys, recorded_count
from trueup.reconcile.resolve import resolve_rule
from trueup.reconcile.target import SCHEMA_SECONDS, Target
from trueup.reconcile.worktable import WorkTable, drop_all

log = logging.getLogger(__name__)

RECORDED = -1  # the watermark slot of the recorded table's own `time`
BEGINNING = ""  # the watermark of a source that was empty: every record is new
APPLY_BY_KEY = 10_000  # up to this many drifted keys, a repair is narrowed to exactly those keys
INLINE_KEYS = 1_000  # a round of more named and queued keys than this reads them from a work table
INLINE_ARRAY = 10_000  # ... or than this, where they are bound as one array (a one-column key, psycopg)
HINTED = 20  # recurring keys that get hints per round
ROUND_KEYS = "trueup_round_keys"  # a round's temporary key table; `trueup_touched` would hide the guard's
MAX_CHANGES = 1_000  # rows a round that repairs on its own may write, unless the config says otherwise
MAX_PERCENT = Decimal(5)  # ... and at most this % of the rule's items
BUSY = "another round of this rule is running"

Key = tuple[Any, ...]


@dataclass(frozen=True)
class SyncOptions:
    apply: bool = False
    max_changes: int | None = None  # rows a repairing round may write; None: the config's [sync] limits
    max_abs_delta: Decimal | None = None  # refuse a repair that corrects any row by more
    yes: bool = False  # writing to a database that looks like production is agreed
    triggered_by: str = "schedule"
    full_every: int = 12
    overlap: timedelta = timedelta(minutes=5)
    sequence_overlap: int = 1000
    recurring_window: timedelta = timedelta(hours=24)
    wait: float = 0  # seconds to wait for a round of the same rule to finish; then skip (keys: queue them)
    backup_dir: Path | None = None
    lock_timeout: float = 30


class Recurrence(NamedTuple):
    key: Key
    delta: Any
    repaired_at: datetime
    run_id: int
    hints: tuple[str, ...]


class RoundResult(NamedTuple):
    rule: str
    kind: str  # full | incremental | keys
    status: str  # clean | drift | corrected | skipped | queued | refused | residual
    started_at: datetime
    duration: float
    checked: int = 0
    drifted: int = 0
    corrected: int = 0
    run_id: int | None = None
    recurring: tuple[Recurrence, ...] = ()
    drift: tuple[DriftRow, ...] = ()
    message: str = ""
    findings: tuple[Finding, ...] = ()

    @property
    def unresolved(self) -> bool:
        """Drift left behind, or an error-severity finding (a named key not found): `--once` and `sync` exit 1."""
        return self.status in ("drift", "refused", "residual") or any(f.severity == "error" for f in self.findings)


@dataclass
class Watcher:
    """Runs rounds over a config's rules. Whether a round is full is decided from `trueup_rounds`,
    so `watch --once` from cron keeps the rhythm across invocations."""

    engine: Engine
    config: Config
    rules: list[str] | None = None
    options: SyncOptions = field(default_factory=SyncOptions)

    def round(self) -> list[RoundResult]:
        """A round of each rule, each followed by the rounds of the keys queued while it ran."""
        return [
            result
            for rule in self.config.select_rules(self.rules)
            for result in run_rounds(self.engine, self.config, rule.name, self.options)
        ]


def run_round(
    engine: Engine,
    config: Config,
    rule_name: str,
    options: SyncOptions,
    *,
    full: bool | None = None,
    keys: Sequence[Key] | None = None,
) -> RoundResult:
    """The round asked for (see `run_rounds`): for hooks, `keys` (queued if a round is running)."""
    return run_rounds(engine, config, rule_name, options, full=full, keys=keys)[0]


def run_rounds(
    engine: Engine,
    config: Config,
    rule_name: str,
    options: SyncOptions,
    *,
    full: bool | None = None,
    keys: Sequence[Key] | None = None,
) -> list[RoundResult]:
    """A round of one rule, then the rounds of the keys queued while it ran, before the lock is let go.

    The round is of `keys`, or full/incremental (None: full every `options.full_every` rounds). When
    the lock stays taken, a round of `keys` queues them for the holder (status `queued`); a full or
    incremental round is skipped, since the holder is doing that work.
    """
    if keys is not None and not keys:
        raise UsageError("name at least one key to sync")
    started = now()
    taken: set[int] = set()  # the queue rows these rounds took
    with rule_lock(engine, rule_name, options.wait) as held:
        results = _holding(engine, config, rule_name, options, full, keys, taken) if held else []
    if not results:
        if keys is None:
            kind = "full" if full else "incremental"
            return [RoundResult(rule_name, kind, "skipped", started, 0.0, message=BUSY)]
        count = _enqueue(engine, config, rule_name, keys, options.triggered_by)
        results = [RoundResult(rule_name, "keys", "queued", started, 0.0, message=f"{BUSY}: {count} key(s) queued")]
    while _queued_since(engine, rule_name, taken):  # queued while the lock was being let go
        with rule_lock(engine, rule_name, 0) as held:
            if not held:
                break  # its new holder takes them
            more = _holding(engine, config, rule_name, options, False, [], taken)
        if more:
            results = more if results[0].status == "queued" else results + more
    return results


def _holding(
    engine: Engine,
    config: Config,
    rule_name: str,
    options: SyncOptions,
    full: bool | None,
    keys: Sequence[Key] | None,
    taken: set[int],
) -> list[RoundResult]:
    """Rounds under the rule's lock: the one asked for, then one per batch of keys queued during the last."""
    with connect(engine) as connection:
        _ensure_tables(connection)
        rule = _resolved(connection, config.rule(rule_name))
        if full is None and keys is None:
            since_full = history.rounds_since_full(connection, rule_name)
            full = since_full is None or since_full + 1 >= options.full_every
        results: list[RoundResult] = []
        while True:
            queued = _pending(connection, rule.name, taken)
            if not queued and (results or keys == []):  # nothing (more) queued: no round of the queue
                return results
            taken.update(row_id for q in queued for row_id in q.ids)
            results.append(_round(connection, config, rule, options, bool(full), keys, queued))
            full, keys = False, []


_READY: weakref.WeakSet[Engine] = weakref.WeakSet()  # engines whose database has sync's tables
_RESOLVED: PerEngine[tuple[str, int], tuple[Rule, Rule]] = PerEngine(SCHEMA_SECONDS)


def _resolved(connection: Connection, rule: Rule) -> Rule:
    """`resolve_rule`, remembered per engine for `SCHEMA_SECONDS`: a hook neither reflects the tables
    nor probes the rule's SQL again. A schema change is seen within that time (until then a query it
    broke fails with the database's message); a config read again (another `Rule`) is resolved anew.
    The entry holds `rule` itself, so its `id` is not reused while the entry lives."""
    return _RESOLVED.fetch(connection.engine, (rule.name, id(rule)), lambda: (rule, resolve_rule(connection, rule)))[1]


def _ensure_tables(connection: Connection) -> None:
    """Create (or upgrade) the history and queue tables, once per engine: hooks pay for it once."""
    if connection.engine not in _READY:
        history.ensure_tables(connection)
        queue.ensure_table(connection)
        _READY.add(connection.engine)


def _pending(connection: Connection, rule: str, taken: set[int]) -> list[queue.Queued]:
    found = queue.pending(connection, rule, taken)
    if connection.in_transaction():
        connection.rollback()  # a new snapshot for what follows (MySQL reads repeatably otherwise)
    return found


def _queued_since(engine: Engine, rule: str, taken: set[int]) -> bool:
    with connect(engine) as connection:
        return bool(_pending(connection, rule, taken))


def _enqueue(engine: Engine, config: Config, rule_name: str, keys: Sequence[Key], queued_by: str) -> int:
    """Queue `keys` (typed and checked like a round's) for the round holding the lock; how many."""
    with connect(engine) as connection:
        _ensure_tables(connection)
        rule = _resolved(connection, config.rule(rule_name))
        typed = _unique(typed_scope(connection, rule, Scope(keys=tuple(keys))).keys)
        with dialect_for(connection).write_transaction(connection):
            queue.enqueue(connection, rule.name, typed, queued_by)
    log.info("rule %s: %s; queued %d key(s)", rule_name, BUSY, len(typed))
    return len(typed)


class _Found(NamedTuple):
    """What a round looked at and found, for recording it."""

    entry: history.Round
    drift: tuple[DriftRow, ...]
    recurring: tuple[Recurrence, ...]
    findings: tuple[Finding, ...]
    marks: dict[int, str]  # the watermarks it reached (none for a round of keys)
    queued: list[tuple[list[int], Key | None]]  # the queue rows it took by key, typed (None: does not fit)
    covered: list[Key] | None  # the keys it looked at; None: every open key among them
    typed: Callable[[Sequence[Any]], Key]


def _round(
    connection: Connection,
    config: Config,
    rule: Rule,
    options: SyncOptions,
    full: bool,
    keys: Sequence[Key] | None,
    queued: list[queue.Queued],
) -> RoundResult:
    started, clock = now(), time.perf_counter()
    typed = Target.of(rule).key_coercer(connection)
    waiting = [(q.ids, _fitting(rule.name, typed, q.key)) for q in queued]
    extra = [key for _, key in waiting if key is not None]
    work: WorkTable | None = None
    round_marks: dict[int, str] = {}  # a round of named keys leaves the watermarks alone
    named: list[Key] = []
    covered: list[Key] | None = None
    try:
        if keys is not None:
            kind = "keys"
            named = _unique(typed_scope(connection, rule, Scope(keys=tuple(keys))).keys)
            covered = _unique([*named, *extra])
            scope, work = _key_scope(connection, rule, covered)
        else:
            timed = _timed_sources(rule, connection.dialect.identifier_preparer)
            marks = history.read_watermarks(connection, rule.name) if timed and not full else {}
            round_marks = _newest(connection, rule, timed)  # read before the scan: what lands during it comes next time
            if not marks and not full and not timed and captures(connection, rule.name):
                kind = "incremental"  # no time column, but capture triggers queue every touched key
                reopened = [_fitting(rule.name, typed, key) for key in history.open_keys(connection, rule.name)]
                # every open key among them: settled like a timed round's, by rule, not key by key
                scope, work = _key_scope(connection, rule, _unique([*extra, *[k for k in reopened if k is not None]]))
            elif not marks:
                kind, scope = "full", EVERYTHING
            else:
                kind = "incremental"
                reopened = [_fitting(rule.name, typed, key) for key in history.open_keys(connection, rule.name)]
                extra += [key for key in reopened if key is not None]
                work = _touched_keys(connection, rule, timed, marks, options, extra)
                scope = Scope(key_table=work.table)
        result = RuleScan(connection, rule, scope=scope, keep=None).result()
        drift = result.worst
        if connection.in_transaction():
            connection.rollback()
        findings = result.findings
        if named and (result.items < len(covered or ()) or any(f.kind == "duplicate_key" for f in findings)):
            findings += _not_found(connection, rule, named, typed)  # some key has no row, or some key two
        recurring = _recurring(connection, rule, drift, options)
        entry = history.Round(
            rule.name, kind, "clean", started, 0.0, options.triggered_by, result.items, len(drift), 0,
            len(recurring), None,
        )  # fmt: skip
        found = _Found(entry, drift, recurring, findings, round_marks, waiting, covered, typed)
        if options.apply and drift:
            return _repair(connection, config, rule, options, found, scope, clock)
        return _record(connection, found, "drift" if drift else "clean", clock, drift)
    finally:
        if work is not None:
            drop_all(connection, [work])


def _repair(
    connection: Connection,
    config: Config,
    rule: Rule,
    options: SyncOptions,
    found: _Found,
    scope: Scope,
    clock: float,
) -> RoundResult:
    """Correct the round's drift, within its limit; the round's history commits with the repair."""
    entry, drift = found.entry, found.drift
    limit, over = _limit(connection, config, rule, options, entry, len(drift))
    if over:
        return _record(connection, found, "refused", clock, drift, over)
    narrowed = Scope(keys=tuple(d.key for d in drift)) if len(drift) <= APPLY_BY_KEY else scope
    committed: list[tuple[history.Round, int]] = []  # (the round as recorded, its id), per attempt

    def remember(tx: Connection, run_id: int, outcomes: list[RuleApplied]) -> None:
        corrected = sum(o.updated + o.inserted for o in outcomes)
        done = entry._replace(
            status="corrected", corrected=corrected, run_id=run_id, duration=time.perf_counter() - clock
        )
        committed.append((done, _remember(tx, found, done, ())))

    try:
        outcome = apply(
            connection,
            config,
            connection.engine.url,
            rules=[rule.name],
            scope=narrowed,
            limits=Limits(limit, options.max_abs_delta),
            backup_dir=options.backup_dir,
            yes=options.yes,
            triggered_by=options.triggered_by,
            lock_timeout=options.lock_timeout,
            before_commit=remember,
        )
    except RefusedError as refusal:  # a guard rail, checked on the corrections as the repair computed them
        return _record(connection, found, "refused", clock, drift, str(refusal).removeprefix("refused: "))
    if outcome.run_id is None:  # refused (or everything moved): nothing was written, remember that
        refused = [f"{len(outcome.conflicts)} key(s) refused"] if outcome.conflicts else []
        refused += [f"{len(outcome.left_out)} key(s) left out for an error finding"] if outcome.left_out else []
        if refused:
            return _record(connection, found, "refused", clock, drift, "; ".join(refused))
        return _record(connection, found, "clean", clock, ())
    done, round_id = committed[-1]  # the attempt that committed
    if outcome.residual:  # some keys moved again after the repair: look at them all again next time
        with dialect_for(connection).write_transaction(connection):
            history.settle_open(connection, done, round_id, drift, [d.key for d in drift])
    status = "residual" if outcome.residual else "corrected"
    return _result(found, done._replace(status=status, corrected=outcome.changed))


def _limit(
    connection: Connection, config: Config, rule: Rule, options: SyncOptions, entry: history.Round, changes: int
) -> tuple[int, str]:
    """The most rows this round may write on its own and, when `changes` is more, why it refuses.

    An explicit `max_changes` is checked by the repair itself; the config's limits need the rule's
    size, which a full round has just counted and other rounds count only when it matters. A round
    of named keys (a hook) can write no more than the keys it was given, so only `max_changes`
    bounds it: a share of the rule's items would refuse a hook on a small table.
    """
    if options.max_changes is not None:
        return options.max_changes, ""
    rows = _first(rule.sync.max_changes, config.sync.max_changes, MAX_CHANGES)
    if entry.kind == "keys":
        return rows, "" if changes <= rows else _over(config, rule, changes, f"max_changes = {rows}")
    percent = _first(rule.sync.max_percent, config.sync.max_percent, MAX_PERCENT)
    items = entry.checked
    if entry.kind != "full" and changes > _share(percent, items):  # it saw part of the rule: count the whole
        items = connection.execute(recorded_count(rule, connection.dialect)).scalar_one()
        connection.rollback()
    limit = min(rows, _share(percent, items))
    if changes <= limit:
        return limit, ""
    return limit, _over(
        config,
        rule,
        changes,
        f"{limit}: the smaller of max_changes = {rows} and max_percent = {percent} % of {items} item(s)",
    )


def _over(config: Config, rule: Rule, changes: int, limit: str) -> str:
    """Why a round that would make `changes` corrections, over `limit`, writes nothing, and how to let it."""
    where = config.path or "the config"
    return (
        f"{changes} correction(s), more than a round may make on its own ({limit}); nothing was written. "
        f"Raise max_changes or max_percent under [sync] (or [rules.sync] of rule {rule.name!r}) in {where}, "
        "or pass --max-changes N"
    )


def _share(percent: Decimal, items: int) -> int:
    return int((Decimal(percent) * items / 100).to_integral_value(rounding=ROUND_CEILING))


def _first(*values: Any) -> Any:
    return next(value for value in values if value is not None)


def _record(
    connection: Connection,
    found: _Found,
    status: str,
    clock: float,
    still_open: tuple[DriftRow, ...],
    message: str = "",
) -> RoundResult:
    """Record a round that wrote no repair, in a transaction of its own."""
    entry = found.entry._replace(status=status, duration=time.perf_counter() - clock, message=message or None)
    with dialect_for(connection).write_transaction(connection):
        _remember(connection, found, entry, still_open)
    return _result(found, entry)


def _remember(connection: Connection, found: _Found, entry: history.Round, still_open: tuple[DriftRow, ...]) -> int:
    """The round, its drift, what stays open, the queue rows it settled and its watermarks (in the caller's
    transaction); the round's id."""
    recurring = {history.key_text(r.key) for r in found.recurring}
    round_id = history.record_round(connection, entry, found.drift, recurring)
    history.settle_open(connection, entry, round_id, still_open, found.covered)
    if found.queued:
        left = {_fitting(entry.rule, found.typed, list(d.key)) for d in still_open}
        settled = [row_id for ids, key in found.queued if key is None or key not in left for row_id in ids]
        queue.remove(connection, settled)
    if found.marks:
        history.save_watermarks(connection, entry.rule, found.marks)
    return round_id


def _result(found: _Found, entry: history.Round) -> RoundResult:
    return RoundResult(
        entry.rule, entry.kind, entry.status, entry.started_at, entry.duration, entry.checked, entry.drifted,
        entry.corrected, entry.run_id, found.recurring, found.drift, entry.message or "", found.findings,
    )  # fmt: skip


# -- keys --------------------------------------------------------------------------------------


def _fitting(rule: str, typed: Callable[[Sequence[Any]], Key], key: list[Any] | None) -> Key | None:
    """A key read back from JSON (the queue, open drift), typed; None, with a warning, if it does not fit."""
    if key is None:
        return None
    try:
        return typed(key)
    except ValueError as error:
        log.warning("rule %s: a stored key does not fit the rule and is dropped: %s", rule, error)
        return None


def _unique(keys: Sequence[Key]) -> list[Key]:
    return list(dict.fromkeys(keys))


def _key_scope(connection: Connection, rule: Rule, keys: list[Key]) -> tuple[Scope, WorkTable | None]:
    """The scope of a round of keys: bound in the query, or (many, or none) in a work table.

    A work table costs two commits of catalog rows (its CREATE and DROP), more than the scan of
    a few thousand keys, so keys bound as one array (`db.is_in`) stay in the query for longer."""
    arrays = len(rule.recorded.key) == 1 and dialect_for(connection).binds_arrays(connection.dialect)
    if 0 < len(keys) <= (INLINE_ARRAY if arrays else INLINE_KEYS):
        return Scope(keys=tuple(keys)), None
    work = WorkTable(connection, ROUND_KEYS, Target.of(rule), {})
    with dialect_for(connection).write_transaction(connection):
        work.create().fill(_key_rows(keys))
    return Scope(key_table=work.table), work


def _key_rows(keys: Sequence[Key]) -> Iterator[dict[str, Any]]:
    return ({f"k{i}": value for i, value in enumerate(key)} for key in keys)


def _not_found(
    connection: Connection, rule: Rule, named: list[Key], typed: Callable[[Sequence[Any]], Key]
) -> tuple[Finding, ...]:
    """A `key_not_found` finding for the named keys that neither the recorded table nor any source holds."""
    statement = known_keys(rule, connection.dialect, dialect_for(connection), Scope(keys=tuple(named)))
    known = {typed(tuple(row)) for row in connection.execute(statement)}
    if connection.in_transaction():
        connection.rollback()
    missing = [key for key in named if key not in known]
    if not missing:
        return ()
    return (finding("key_not_found", len(missing), [{"key": list(key)} for key in missing[:SAMPLE_SIZE]]),)


# -- incremental -------------------------------------------------------------------------------


class _Timed(NamedTuple):
    slot: int  # source index, or RECORDED
    origin: Any  # table or FROM clause
    keys: list[sa.ColumnElement[Any]]
    column: sa.ColumnElement[Any]
    sequence: bool


def _timed_sources(rule: Rule, prep: Any) -> list[_Timed]:
    """Sources (and the recorded table) with a time or sequence column, i.e. with a watermark."""

    def refs(paths: list[str]) -> list[sa.ColumnElement[Any]]:
        return [column_ref(prep, p) for p in paths]

    found = []
    for index, source in enumerate(rule.expected):
        name = source.time or source.sequence
        if name:
            found.append(_Timed(index, _origin(source), refs(source.key), column_ref(prep, name), source.time is None))
    recorded = rule.recorded
    if recorded.time:
        timed = _Timed(RECORDED, table_ref(recorded.table), refs(recorded.key), column_ref(prep, recorded.time), False)
        found.append(timed)
    return found


def _origin(source: Source) -> Any:
    return table_ref(source.table) if source.table else user_sql(source.from_ or "")


def _newest(connection: Connection, rule: Rule, timed: list[_Timed]) -> dict[int, str]:
    """Each timed source's newest time (or id) right now: the watermarks this round will reach.

    Times ahead of the database's clock (a client with a skewed clock, a typo) are left out: a
    watermark in the future would hide every ordinary record until then. Such records stay past
    the watermark, so every round looks at them again until their time has come.
    """
    dialect = dialect_for(connection)
    marks = {}
    for source in timed:
        newest = sa.select(sa.func.max(source.column)).select_from(source.origin)
        if not source.sequence:
            newest = newest.where(dialect.not_future(source.column))
        value = connection.execute(newest).scalar()
        marks[source.slot] = BEGINNING if value is None else _mark_text(value)
    if connection.in_transaction():
        connection.rollback()
    return marks


def _touched_keys(
    connection: Connection,
    rule: Rule,
    timed: list[_Timed],
    marks: dict[int, str],
    options: SyncOptions,
    extra: list[Key],
) -> WorkTable:
    """A temporary table of every key with a record past its source's watermark (minus the overlap),
    and the `extra` keys (open drift, the queue)."""
    touched = WorkTable(connection, ROUND_KEYS, Target.of(rule), {})
    with dialect_for(connection).write_transaction(connection):
        touched.create()
        for source in timed:
            if source.slot not in marks:
                continue
            found = sa.select(*source.keys).select_from(source.origin).distinct()
            if marks[source.slot] != BEGINNING:
                found = found.where(source.column > _since(connection, marks[source.slot], source.sequence, options))
            connection.execute(sa.insert(touched.table).from_select(touched.key_names, found))
        touched.fill(_key_rows(extra))
    return touched


def _since(connection: Connection, mark: str, sequence: bool, options: SyncOptions) -> Any:
    if sequence:
        return int(mark) - options.sequence_overlap
    return dialect_for(connection).time_bound(datetime.fromisoformat(mark) - options.overlap, mark)


def _mark_text(value: Any) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat()
    return str(value)


# -- recurring ---------------------------------------------------------------------------------


def _recurring(
    connection: Connection, rule: Rule, drift: tuple[DriftRow, ...], options: SyncOptions
) -> tuple[Recurrence, ...]:
    """Drifted keys a round repaired within the window: with what their sources gained since."""
    if not drift:
        return ()
    by_text = {history.key_text(d.key): d for d in drift}
    repaired = history.last_repairs(connection, rule.name, by_text, now() - options.recurring_window)
    found = []
    for number, (text, (at, run_id)) in enumerate(sorted(repaired.items(), key=lambda kv: kv[1][0])):
        d = by_text[text]
        hints = _hints(connection, rule, d.key, at) if number < HINTED else ()
        found.append(Recurrence(d.key, d.delta, at, run_id, hints))
    if connection.in_transaction():
        connection.rollback()
    return tuple(found)


def _hints(connection: Connection, rule: Rule, key: tuple[Any, ...], since: datetime) -> tuple[str, ...]:
    """For each timed source: how many of the key's records appeared since the repair, and when."""
    hints = []
    for index, source in enumerate(rule.expected):
        if not source.time:
            continue
        prep = connection.dialect.identifier_preparer
        moment = column_ref(prep, source.time)
        matches = [column_ref(prep, k) == value for k, value in zip(source.key, key, strict=True)]
        query = (
            sa.select(sa.func.count(), sa.func.max(moment)).select_from(_origin(source)).where(*matches, moment > since)
        )
        count, latest = connection.execute(query).one()
        if count:
            name = source.table or f"expected[{index}]"
            hints.append(f"{name}: {count} record(s) since the repair at {since:%Y-%m-%d %H:%M:%S} (latest {latest})")
    return tuple(hints)


# -- locks -------------------------------------------------------------------------------------


@contextmanager
def rule_lock(engine: Engine, rule: str, wait: float) -> Iterator[bool]:
    """Hold the lock of `rule`'s rounds on a connection of its own for the duration; yields False if it
    stayed taken.

    The lock is named after the schema (MySQL: the database) as well as the rule: MySQL's named locks
    and PostgreSQL's advisory locks are shared by every database or schema on the server, and rounds of
    a rule in another one neither conflict with these nor take this one's queued keys.
    """
    dialect = dialect_for(engine)
    with engine.connect() as connection:
        name = f"trueup:sync:{connection.dialect.default_schema_name}:{rule}"
        deadline = time.monotonic() + wait
        held = dialect.try_lock(connection, name)
        if not held and wait > 0:
            log.info("rule %s: %s; waiting up to %g s", rule, BUSY, wait)
        while not held and time.monotonic() < deadline:
            time.sleep(0.2)
            held = dialect.try_lock(connection, name)
        try:
            yield held
        finally:
            if held:
                dialect.unlock(connection, name)
