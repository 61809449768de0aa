"""Drift history: every sync round, the keys it found drifted, and the watermarks it reached.

Four tables, created on first use in the target database:

* `trueup_rounds`: one row per rule per round (full, incremental or keys),
  with its counts, the apply run that corrected it, if any, and why it did
  not repair (`message`: a limit it was over, keys refused);
* `trueup_drift_history`: the drifted keys of each round, with their figures
  and whether the key was *recurring*;
* `trueup_open_drift`: the keys still *open*: found drifted by a round that
  did not repair them (a round that only checks, a round over its limit, a
  repair that left a residual). Every full or incremental round takes them
  all again, so drift found once is never forgotten by the next round that
  happens to look elsewhere, and stays counted until a round finds the key
  clean or repairs it;
* `trueup_watermarks`: per rule and timed source, the newest time (or id)
  a round has seen, so the next round can look only at what came after.

A key is recurring when it drifts again within a window after a round
repaired it: the figure was corrected, and something (a code path that skips
the cached update) broke it again. That is a live bug, and the rows its
sources gained in between point at it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from trueup.db import ROW_ID, add_missing_columns, create_missing, dialect_for, in_chunks
from trueup.reconcile.audit import now
from trueup.reconcile.drift import DriftRow
from trueup.report.format import to_json

metadata = sa.MetaData()

rounds = sa.Table(
    "trueup_rounds",
    metadata,
    sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
    sa.Column("rule", sa.String(128), nullable=False, index=True),
    sa.Column("kind", sa.String(16), nullable=False),  # full | incremental | keys
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("started_at", sa.DateTime, nullable=False),
    sa.Column("duration", sa.Float, nullable=False),
    sa.Column("triggered_by", sa.String(64), nullable=False),
    sa.Column("checked", sa.Integer, nullable=False),
    sa.Column("drifted", sa.Integer, nullable=False),
    sa.Column("corrected", sa.Integer, nullable=False),
    sa.Column("recurring", sa.Integer, nullable=False),
    sa.Column("run_id", ROW_ID),
    sa.Column("message", sa.Text),  # why a round did not repair what it found (added after 0.1: nullable)
)

drift_history = sa.Table(
    "trueup_drift_history",
    metadata,
    sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
    sa.Column("round_id", ROW_ID, nullable=False, index=True),
    sa.Column("rule", sa.String(128), nullable=False),
    sa.Column("key", sa.String(512), nullable=False),  # JSON list of values
    sa.Column("observed_at", sa.DateTime, nullable=False),
    sa.Column("recorded", sa.Text),
    sa.Column("expected", sa.Text),
    sa.Column("delta", sa.Text),
    sa.Column("run_id", ROW_ID),  # the apply run that corrected it, when the round repaired
    sa.Column("recurring", sa.Boolean, nullable=False, default=False),
    sa.Index("ix_trueup_drift_history_rule_key", "rule", "key"),
)

open_drift = sa.Table(
    "trueup_open_drift",
    metadata,
    sa.Column("rule", sa.String(128), primary_key=True),
    sa.Column("key", sa.String(512), primary_key=True),  # JSON list of values, as in trueup_drift_history
    sa.Column("round_id", ROW_ID, nullable=False),  # the latest round that found it drifted
    sa.Column("observed_at", sa.DateTime, nullable=False),
)

watermarks = sa.Table(
    "trueup_watermarks",
    metadata,
    sa.Column("rule", sa.String(128), primary_key=True),
    sa.Column("source", sa.Integer, primary_key=True),  # index in the rule's sources; -1 is the recorded table
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)

ANALYZE_AFTER = 10_000  # rows recorded by one round


class Round(NamedTuple):
    rule: str
    kind: str
    status: str
    started_at: datetime
    duration: float
    triggered_by: str
    checked: int
    drifted: int
    corrected: int
    recurring: int
    run_id: int | None
    message: str | None = None


class Sighting(NamedTuple):
    """One drifted key seen by one round."""

    observed_at: datetime
    rule: str
    key: tuple[Any, ...]
    recorded: Decimal | None
    expected: Decimal | None
    delta: Decimal | None
    run_id: int | None
    recurring: bool


def ensure_tables(connection: Connection) -> None:
    create_missing(connection, metadata)
    add_missing_columns(connection, rounds)


def key_text(key: Sequence[Any]) -> str:
    """The key as stored: JSON, exactly as `to_json` writes it, so equal keys compare equal."""
    return to_json(list(key))


def last_repairs(
    connection: Connection, rule: str, keys: Iterable[str], since: datetime
) -> dict[str, tuple[datetime, int]]:
    """For each key (JSON) repaired by a round since `since`: when, and by which run."""
    found: dict[str, tuple[datetime, int]] = {}
    h = drift_history.c
    for chosen in in_chunks(connection.dialect, h.key, list(keys)):
        query = (
            sa.select(h.key, sa.func.max(h.observed_at), sa.func.max(h.run_id))
            .where(h.rule == rule, h.run_id.is_not(None), h.observed_at >= since, chosen)
            .group_by(h.key)
        )
        found |= {key: (at, run_id) for key, at, run_id in connection.execute(query)}
    return found


def record_round(connection: Connection, entry: Round, drifted: Iterable[DriftRow], recurring: set[str]) -> int:
    """Insert the round and its drifted keys (inside the caller's transaction)."""
    round_id = int(connection.execute(rounds.insert().values(**entry._asdict())).inserted_primary_key[0])
    rows = [
        {
            "round_id": round_id,
            "rule": entry.rule,
            "key": key,
            "observed_at": entry.started_at,
            "recorded": str(d.recorded),
            "expected": str(d.expected),
            "delta": str(d.delta),
            "run_id": entry.run_id,
            "recurring": key in recurring,
        }
        for d in drifted
        for key in (key_text(d.key),)
    ]
    dialect_for(connection).insert_rows(connection, drift_history, rows)
    if len(rows) >= ANALYZE_AFTER:
        # A first full round may record 100,000 keys into an empty table; until the server's
        # autovacuum notices, the next rounds' lookups by key would scan all of them.
        dialect_for(connection).analyze(connection, drift_history.name)
    return round_id


def open_keys(connection: Connection, rule: str) -> list[list[Any]]:
    """The keys of `rule` still open (found drifted, not repaired since), as JSON-decoded lists."""
    o = open_drift.c
    return [json.loads(text) for text in connection.execute(sa.select(o.key).where(o.rule == rule)).scalars()]


def settle_open(
    connection: Connection,
    entry: Round,
    round_id: int,
    still_open: Iterable[DriftRow],
    covered: Iterable[Sequence[Any]] | None,
) -> None:
    """After a round (inside its transaction): the keys it looked at are open again only if it left them drifted.

    `covered` is None for a round that looked at every open key (full and incremental rounds do).
    """
    o = open_drift.c
    reopened = [key_text(d.key) for d in still_open]
    if covered is None:
        connection.execute(open_drift.delete().where(o.rule == entry.rule))
        looked_at = []
    else:
        looked_at = sorted({key_text(k) for k in covered} | set(reopened))
    for chosen in in_chunks(connection.dialect, o.key, looked_at):
        connection.execute(open_drift.delete().where(o.rule == entry.rule, chosen))
    rows = [{"rule": entry.rule, "key": k, "round_id": round_id, "observed_at": entry.started_at} for k in reopened]
    dialect_for(connection).insert_rows(connection, open_drift, rows)


def rounds_since_full(connection: Connection, rule: str) -> int | None:
    """Incremental rounds of `rule` since its last full one (None if it never had a full round)."""
    r = rounds.c
    last_full = connection.execute(
        sa.select(sa.func.max(r.id)).where(r.rule == rule, r.kind == "full", r.status != "skipped")
    ).scalar()
    if last_full is None:
        return None
    since = sa.select(sa.func.count()).where(r.rule == rule, r.kind == "incremental", r.id > last_full)
    return connection.execute(since).scalar_one()


def read_watermarks(connection: Connection, rule: str) -> dict[int, str]:
    w = watermarks.c
    return dict(connection.execute(sa.select(w.source, w.value).where(w.rule == rule)).all())


def save_watermarks(connection: Connection, rule: str, marks: dict[int, str]) -> None:
    w = watermarks.c
    for source, value in marks.items():
        connection.execute(watermarks.delete().where(w.rule == rule, w.source == source))
        connection.execute(watermarks.insert().values(rule=rule, source=source, value=value, updated_at=now()))


def sightings(
    connection: Connection,
    *,
    rule: str | None = None,
    key: Sequence[Any] | None = None,
    since: datetime | None = None,
    limit: int = 50,
) -> list[Sighting]:
    """The latest drifted keys seen by rounds, newest first."""
    if not sa.inspect(connection).has_table(drift_history.name):
        return []
    h = drift_history.c
    query = sa.select(h.observed_at, h.rule, h.key, h.recorded, h.expected, h.delta, h.run_id, h.recurring)
    if rule:
        query = query.where(h.rule == rule)
    if key is not None:
        query = query.where(h.key == key_text(key))
    if since is not None:
        query = query.where(h.observed_at >= since)
    rows = connection.execute(query.order_by(h.observed_at.desc(), h.id.desc()).limit(limit))
    return [
        Sighting(at, r, tuple(json.loads(k)), _number(rec), _number(exp), _number(delta), run, bool(recurring))
        for at, r, k, rec, exp, delta, run, recurring in rows
    ]


def recent_rounds(
    connection: Connection, rule: str | None = None, since: datetime | None = None, limit: int = 500
) -> list[Round]:
    """Rounds, oldest first: the series behind the drift-over-time chart."""
    if not sa.inspect(connection).has_table(rounds.name):
        return []
    r = rounds.c
    query = sa.select(*[r[name] for name in Round._fields])
    if rule:
        query = query.where(r.rule == rule)
    if since is not None:
        query = query.where(r.started_at >= since)
    newest = list(connection.execute(query.order_by(r.id.desc()).limit(limit)))
    return [Round(*row) for row in reversed(newest)]


def _number(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)
