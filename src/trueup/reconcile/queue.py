"""The dirty-key queue: keys that a round of their rule must look at, kept in the target database.

One table, `trueup_dirty`, created on first use:

| column      | type                  | holds                                                        |
| ----------- | --------------------- | ------------------------------------------------------------ |
| `id`        | 64-bit, autoincrement | unique, roughly in the order keys were queued (see below)    |
| `rule`      | varchar(128)          | the rule's name, as in the config                            |
| `key`       | varchar(512)          | the key as a JSON array in the rule's recorded-key order: `[1, 10]` |
| `queued_at` | timestamp (UTC)       | when it was queued                                           |
| `queued_by` | varchar(128)          | who or what queued it: a hook's `triggered_by`, a trigger's name |

Writers only ever INSERT rows; any number may queue the same key. On PostgreSQL
the id's sequence hands each session 64 ids at a time (`CACHE 64`): concurrent
writers would otherwise queue one after another on the sequence. Rounds take
rows by their ids, never by a range of them, so ids out of order are harmless.
The table has no index but its primary key: a capture trigger pays for every index on
each row it queues (an index on `rule` cost about 3 µs of a sale's ~18 µs of
trigger work alone, and far more under concurrent writers: its keys are all
equal, so its inserts crowd one leaf page), while rounds drain the
queue, so reading it by `rule` scans a short table. Today the
writer is a hook (`trueup sync`, `trueup.sync()`) that found a round of its
rule running: rather than skip, it queues its keys and returns `queued`.
Database triggers (`trueup guard --mode capture`) append here too, so
the shape stays this plain: a trigger can write a row with one INSERT.

Readers are the rounds of the rule, under the rule's lock: every round takes
every row queued before it began (`pending`), and the holder of the lock
takes the rows queued while it ran before it lets go (see
`trueup.reconcile.sync`). Rows leave the queue (`remove`) only inside the
transaction in which a round that took them commits its history, so a round
that crashes or is killed leaves them queued for the next one; a key that
round found drifted and did not repair stays queued as well.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Iterable, Sequence
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from trueup.db import ROW_ID, create_missing, in_chunks
from trueup.reconcile.audit import now
from trueup.reconcile.history import key_text

log = logging.getLogger(__name__)
metadata = sa.MetaData()

dirty = sa.Table(
    "trueup_dirty",
    metadata,
    sa.Column("id", ROW_ID, sa.Identity(cache=64), primary_key=True),
    sa.Column("rule", sa.String(128), nullable=False),  # no index: every queued key would pay for it
    sa.Column("key", sa.String(512), nullable=False),
    sa.Column("queued_at", sa.DateTime, nullable=False),
    sa.Column("queued_by", sa.String(128), nullable=False),
)


class Queued(NamedTuple):
    """A key queued once or more: the rows that queued it, oldest first."""

    ids: list[int]
    key: list[Any] | None  # None: the rows' key is not a JSON array (it is dropped, with a warning)


def ensure_table(connection: Connection) -> None:
    create_missing(connection, metadata)


def enqueue(connection: Connection, rule: str, keys: Iterable[Sequence[Any]], queued_by: str) -> None:
    """Queue `keys` of `rule` (inside the caller's transaction)."""
    at = now()
    rows = [{"rule": rule, "key": key_text(k), "queued_at": at, "queued_by": queued_by[:128]} for k in keys]
    if rows:
        connection.execute(dirty.insert(), rows)


def pending(connection: Connection, rule: str, taken: Collection[int] = ()) -> list[Queued]:
    """The keys queued for `rule` by rows not in `taken`, in the order they were first queued.

    A key is decoded once however many rows queued it (a sale's INSERT and UPDATE each queue its item).
    """
    d = dirty.c
    rows = connection.execute(sa.select(d.id, d.key).where(d.rule == rule).order_by(d.id)).all()
    by_text: dict[str, list[int]] = {}
    for row_id, text in rows:
        if row_id not in taken:
            by_text.setdefault(text, []).append(row_id)
    return [Queued(ids, _decoded(ids[0], text)) for text, ids in by_text.items()]


def remove(connection: Connection, ids: Sequence[int]) -> None:
    """Delete queue rows by id (inside the transaction of the round that took them)."""
    for chosen in in_chunks(connection.dialect, dirty.c.id, ids):
        connection.execute(dirty.delete().where(chosen))


def _decoded(row_id: int, text: str) -> list[Any] | None:
    try:
        key = json.loads(text)
    except ValueError:
        key = None
    if not isinstance(key, list):
        log.warning("trueup_dirty row %s: the key %r is not a JSON array; dropping it", row_id, text[:80])
        return None
    return key
