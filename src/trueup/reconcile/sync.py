"""Sync: keep figures true with rounds that never overlap, look only at what changed, and remember.

A *round* checks one rule (and with `apply` repairs it, as a run) under a
named lock, so two rounds of the same rule on the same database never run at
once; a round that finds the lock taken waits up to `wait` seconds, then
skips. Locks belong to a database session (PostgreSQL advisory locks, MySQL
GET_LOCK) or, on SQLite, to a row naming a live process: a crashed holder
never blocks anyone for long.

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
* **keys**: the keys a caller names (`trueup sync --key`, `trueup.sync()`), for
  hooks called right after a sale or a purchase.

Every round is recorded in `trueup_rounds` with its drifted keys in
`trueup_drift_history`; when the round repairs, those rows, the watermarks
and the repair commit in one transaction. A key that drifts again within
`recurring_window` of its last repair is *recurring*, reported with the
records its timed sources gained since that repair: the hint that points at
the code path that skips the cached update.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from trueup.config import Config, Rule, Source
from trueup.db import column_ref, connect, dialect_for, table_ref, user_sql
from trueup.reconcile import history
from trueup.reconcile.apply import NO_LIMITS, RuleApplied, apply
from trueup.reconcile.audit import now
from trueup.reconcile.check import RuleScan, typed_scope
from trueup.reconcile.drift import DriftRow
from trueup.reconcile.guard import Limits
from trueup.reconcile.query import EVERYTHING, Scope
from trueup.reconcile.resolve import resolve_rule
from trueup.reconcile.target import Target
from trueup.reconcile.worktable import WorkTable, drop_all

log = logging.getLogger(__name__)

RECORDED = -1  # the watermark slot of the recorded table's own `time`
BEGINNING = ""  # the watermark of a source that was empty: every record is new
APPLY_BY_KEY = 10_000  # up to this many drifted keys, a repair is narrowed to exactly those keys
HINTED = 20  # recurring keys that get hints per round


@dataclass(frozen=True)
class SyncOptions:
    apply: bool = False
    limits: Limits = NO_LIMITS
    yes: bool = False  # writing to a database that looks like production is agreed
    triggered_by: str = "schedule"
    full_every: int = 12
    overlap: timedelta = timedelta(minutes=5)
    sequence_overlap: int = 1000
    recurring_window: timedelta = timedelta(hours=24)
    wait: float = 0  # seconds to wait for a round of the same rule to finish; then skip
    backup_dir: Path | None = None
    lock_timeout: float = 30


class Recurrence(NamedTuple):
    key: tuple[Any, ...]
    delta: Any
    repaired_at: datetime
    run_id: int
    hints: tuple[str, ...]


class RoundResult(NamedTuple):
    rule: str
    kind: str  # full | incremental | keys
    status: str  # clean | drift | corrected | skipped | refused | residual
    started_at: datetime
    duration: float
    checked: int = 0
    drifted: int = 0
    corrected: int = 0
    run_id: int | None = None
    recurring: tuple[Recurrence, ...] = ()
    drift: tuple[DriftRow, ...] = ()
    message: str = ""

    @property
    def unresolved(self) -> bool:
        """Drift found and not corrected (or not checked at all): what makes `--once` exit 1."""
        return self.status in ("drift", "refused", "residual")


@dataclass
class Watcher:
    """Runs rounds over a config's rules. Whether a round is full is decided from `trueup_rounds`,
    so `watch --once` from cron keeps the rhythm across invocations."""

    engine: Engine
    config: Config
    rules: list[str] | None = None
    options: SyncOptions = field(default_factory=SyncOptions)

    def round(self) -> list[RoundResult]:
        return [run_round(self.engine, self.config, r.name, self.options) for r in self.config.select_rules(self.rules)]


def sync(
    engine: Engine, config: Config, rule: str, keys: list[tuple[Any, ...]], options: SyncOptions = SyncOptions()
) -> RoundResult:
    """Check (and with `options.apply` repair) just these keys of one rule: for hooks after a sale."""
    return run_round(engine, config, rule, options, keys=keys)


def run_round(
    engine: Engine,
    config: Config,
    rule_name: str,
    options: SyncOptions,
    *,
    full: bool | None = None,
    keys: list[tuple[Any, ...]] | None = None,
) -> RoundResult:
    """One round of one rule: `keys`, or full/incremental (None: full every `options.full_every` rounds)."""
    started, clock = now(), time.perf_counter()
    with rule_lock(engine, f"trueup:sync:{rule_name}", options.wait) as held:
        if not held:
            kind = "keys" if keys else "full" if full else "incremental"
            return RoundResult(
                rule_name, kind, "skipped", started, 0.0, message="another round of this rule is running"
            )
        with connect(engine) as connection:
            history.ensure_tables(connection)
            rule = resolve_rule(connection, config.rule(rule_name))
            if full is None and keys is None:
                since_full = history.rounds_since_full(connection, rule_name)
                full = since_full is None or since_full + 1 >= options.full_every
            return _round(connection, config, rule, options, bool(full), keys, started, clock)


def _round(
    connection: Connection,
    config: Config,
    rule: Rule,
    options: SyncOptions,
    full: bool,
    keys: list[tuple[Any, ...]] | None,
    started: datetime,
    clock: float,
) -> RoundResult:
    touched: WorkTable | None = None
    round_marks: dict[int, str] = {}  # a round of named keys leaves the watermarks alone
    if keys is not None:
        kind, scope = "keys", typed_scope(connection, rule, Scope(keys=tuple(keys)))
    else:
        timed = _timed_sources(rule, connection.dialect.identifier_preparer)
        marks = history.read_watermarks(connection, rule.name) if timed and not full else {}
        round_marks = _newest(connection, rule, timed)  # read before the scan: what lands during it comes next time
        if not marks:
            kind, scope = "full", EVERYTHING
        else:
            kind = "incremental"
            touched = _touched_keys(connection, rule, timed, marks, options)
            scope = Scope(key_table=touched.table)
    try:
        scan = RuleScan(connection, rule, scope=scope, keep=None)
        result = scan.result()
        drift = result.worst
        if connection.in_transaction():
            connection.rollback()
        recurring = _recurring(connection, rule, drift, options)
        entry = history.Round(
            rule.name,
            kind,
            "clean",
            started,
            0.0,
            options.triggered_by,
            result.items,
            len(drift),
            0,
            len(recurring),
            None,
        )
        if options.apply and drift:
            return _repair(connection, config, rule, options, entry, drift, recurring, round_marks, scope, clock)
        status = "drift" if drift else "clean"
        entry = entry._replace(status=status, duration=time.perf_counter() - clock)
        with dialect_for(connection).write_transaction(connection):
            _remember(connection, rule, entry, drift, recurring, round_marks)
        return RoundResult(
            rule.name, kind, status, started, entry.duration, result.items, len(drift), 0, None, recurring, drift
        )
    finally:
        if touched is not None:
            drop_all(connection, [touched])


def _repair(
    connection: Connection,
    config: Config,
    rule: Rule,
    options: SyncOptions,
    entry: history.Round,
    drift: tuple[DriftRow, ...],
    recurring: tuple[Recurrence, ...],
    marks: dict[int, str],
    scope: Scope,
    clock: float,
) -> RoundResult:
    """Correct the round's drift; the round's history and watermarks commit with the repair."""
    narrowed = Scope(keys=tuple(d.key for d in drift)) if len(drift) <= APPLY_BY_KEY else scope
    recorded_entry: list[history.Round] = []

    def remember(tx: Connection, run_id: int, outcomes: list[RuleApplied]) -> None:
        corrected = sum(o.updated + o.inserted for o in outcomes)
        done = entry._replace(
            status="corrected", corrected=corrected, run_id=run_id, duration=time.perf_counter() - clock
        )
        recorded_entry.append(done)
        _remember(tx, rule, done, drift, recurring, marks)

    outcome = apply(
        connection,
        config,
        connection.engine.url,
        rules=[rule.name],
        scope=narrowed,
        limits=options.limits,
        backup_dir=options.backup_dir,
        yes=options.yes,
        triggered_by=options.triggered_by,
        lock_timeout=options.lock_timeout,
        before_commit=remember,
    )
    if outcome.run_id is None:  # refused (or everything moved): nothing was written, remember that
        status = "refused" if outcome.conflicts or outcome.left_out else "clean"
        done = entry._replace(status=status, duration=time.perf_counter() - clock)
        with dialect_for(connection).write_transaction(connection):
            _remember(connection, rule, done, drift, recurring, marks)
    else:
        done = recorded_entry[-1]._replace(
            status="residual" if outcome.residual else "corrected"
        )  # the attempt that committed
    refused = [f"{len(outcome.conflicts)} key(s) refused"] if outcome.conflicts else []
    refused += [f"{len(outcome.left_out)} key(s) left out for an error finding"] if outcome.left_out else []
    message = "; ".join(refused)
    return RoundResult(
        rule.name, entry.kind, done.status, entry.started_at, done.duration, entry.checked, len(drift),
        outcome.changed, outcome.run_id, recurring, drift, message,
    )  # fmt: skip


def _remember(
    connection: Connection,
    rule: Rule,
    entry: history.Round,
    drift: tuple[DriftRow, ...],
    recurring: tuple[Recurrence, ...],
    marks: dict[int, str],
) -> None:
    history.record_round(connection, entry, drift, {history.key_text(r.key) for r in recurring})
    if marks:
        history.save_watermarks(connection, rule.name, marks)


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
    connection: Connection, rule: Rule, timed: list[_Timed], marks: dict[int, str], options: SyncOptions
) -> WorkTable:
    """A temporary table of every key with a record past its source's watermark (minus the overlap)."""
    touched = WorkTable(connection, "trueup_touched", Target.of(rule), {})
    with dialect_for(connection).write_transaction(connection):
        touched.create()
        for source in timed:
            if source.slot not in marks:
                continue
            found = sa.select(*source.keys).select_from(source.origin).distinct()
            if marks[source.slot] != BEGINNING:
                found = found.where(source.column > _since(connection, marks[source.slot], source.sequence, options))
            connection.execute(sa.insert(touched.table).from_select(touched.key_names, found))
        touched.analyze()
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
def rule_lock(engine: Engine, name: str, wait: float) -> Iterator[bool]:
    """Hold the named lock on a connection of its own for the duration; yields False if it stayed taken."""
    dialect = dialect_for(engine)
    with engine.connect() as connection:
        deadline = time.monotonic() + wait
        held = dialect.try_lock(connection, name)
        while not held and time.monotonic() < deadline:
            time.sleep(0.2)
            held = dialect.try_lock(connection, name)
        try:
            yield held
        finally:
            if held:
                dialect.unlock(connection, name)
