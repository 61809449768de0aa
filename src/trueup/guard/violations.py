"""`trueup_violations`: what an alarm guard's check at commit found (see `trueup.guard.commit`).

One row per key found drifted at the commit of a transaction that touched it,
with who committed it: the rule, the key (a JSON array in recorded-key order),
the recorded and expected figures, the session's `application_name`, the role
that connected (`session_user`: the check runs as the guard's owner, so
`current_user` would name the owner), the client address (NULL over a Unix
socket), the time (UTC) and the transaction id.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from trueup.schema import Document, Exact, KeyValues

VIOLATIONS = "trueup_violations"

metadata = sa.MetaData()
violations = sa.Table(
    VIOLATIONS,
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("rule", sa.String(128), nullable=False, index=True),
    sa.Column("key", sa.String(512), nullable=False),
    sa.Column("recorded", sa.Numeric, nullable=True),
    sa.Column("expected", sa.Numeric, nullable=True),
    sa.Column("application_name", sa.Text, nullable=True),
    sa.Column("db_user", sa.Text, nullable=False),
    sa.Column("client_addr", sa.Text, nullable=True),
    sa.Column("at", sa.DateTime, nullable=False),
    sa.Column("txid", sa.BigInteger, nullable=False),
)


class ViolationEntry(Document):
    """A commit an alarm guard found drifted, and who made it."""

    id: int
    rule: str
    key: KeyValues
    recorded: Exact | None
    expected: Exact | None
    application_name: str | None
    user: str
    client_addr: str | None
    at: str
    txid: int


def listed(connection: Connection, rule: str | None = None, limit: int = 100) -> list[ViolationEntry]:
    """The most recent violations (of `rule`, if given), newest first; none where no alarm ever stood."""
    if not sa.inspect(connection).has_table(VIOLATIONS):
        return []
    v = violations.c
    query = sa.select(violations).order_by(v.id.desc()).limit(limit)
    if rule is not None:
        query = query.where(v.rule == rule)
    return [_plain(row._mapping) for row in connection.execute(query)]


def _plain(row: Any) -> ViolationEntry:
    return {
        "id": row["id"],
        "rule": row["rule"],
        "key": json.loads(row["key"]),
        "recorded": row["recorded"],
        "expected": row["expected"],
        "application_name": row["application_name"],
        "user": row["db_user"],
        "client_addr": row["client_addr"],
        "at": row["at"].isoformat(),
        "txid": row["txid"],
    }
