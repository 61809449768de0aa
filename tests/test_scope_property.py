"""Property: whatever OR-laden fragments a rule holds, `apply --key K` changes only K's rows, and undo
puts the table back exactly, on every database.

Random rules combine a recorded `where`, a source `where`, a `--where` scope (each possibly an OR),
`insert_missing`, a second source taking away, and a recorded table with or without a primary key.
"""

from __future__ import annotations

from collections import Counter

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.databases import Database
from trueup.config import parse_config
from trueup.db import open_engine
from trueup.reconcile.apply import apply
from trueup.reconcile.query import Scope
from trueup.reconcile.undo import undo_run

RECORDED_WHERE = [None, "status = 'A' OR status = 'B'", "q > 2 OR status = 'C'", "status <> 'C' OR q = 0"]
SOURCE_WHERE = [None, "kind = 'in' OR kind = 'adjust'", "q > 1 OR kind = 'out'"]
SCOPE_WHERE = [None, "status = 'B' OR q < 3", "k = 1 OR k = 2", "1 = 1 OR status = 'A'"]

metadata = sa.MetaData()
with_pk = sa.Table(
    "rec_pk",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("k", sa.Integer),
    sa.Column("status", sa.String(8)),
    sa.Column("q", sa.Integer),
)
without_pk = sa.Table(
    "rec_bare", metadata, sa.Column("k", sa.Integer), sa.Column("status", sa.String(8)), sa.Column("q", sa.Integer)
)
moves = sa.Table(
    "moves", metadata, sa.Column("k", sa.Integer), sa.Column("kind", sa.String(8)), sa.Column("q", sa.Integer)
)

recorded_rows = st.lists(
    st.tuples(st.integers(1, 8), st.sampled_from("ABC"), st.integers(0, 5)), min_size=1, max_size=10
)
move_rows = st.lists(
    st.tuples(st.integers(1, 10), st.sampled_from(["in", "out", "adjust"]), st.integers(0, 6)), max_size=24
)


def rule(table: str, recorded_where, source_where, insert_missing: bool, takes_away: bool):
    recorded = {"table": table, "key": ["k"], "quantity": "q", "insert_missing": insert_missing}
    if recorded_where:
        recorded["where"] = recorded_where
    if table == "rec_pk":
        recorded["insert_defaults"] = {"status": "A"}
    adds = {"table": "moves", "key": ["k"], "quantity": "q"} | ({"where": source_where} if source_where else {})
    expected = [adds] + (
        [{"table": "moves", "key": ["k"], "quantity": "q", "sign": -1, "where": "kind = 'out'"}] if takes_away else []
    )
    return parse_config({"rules": [{"name": "r", "recorded": recorded, "expected": expected}]})


def rows_of(db: Database, table: sa.Table) -> Counter:
    with db.engine.connect() as connection:
        return Counter(tuple(row) for row in connection.execute(sa.select(table)))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    recorded=recorded_rows,
    moved=move_rows,
    primary_key=st.booleans(),
    recorded_where=st.sampled_from(RECORDED_WHERE),
    source_where=st.sampled_from(SOURCE_WHERE),
    scope_where=st.sampled_from(SCOPE_WHERE),
    insert_missing=st.booleans(),
    takes_away=st.booleans(),
    key=st.integers(1, 10),
)
def test_apply_key_changes_only_that_keys_rows(
    db: Database,
    recorded,
    moved,
    primary_key,
    recorded_where,
    source_where,
    scope_where,
    insert_missing,
    takes_away,
    key,
) -> None:
    table = with_pk if primary_key else without_pk
    metadata.drop_all(db.engine)
    metadata.create_all(db.engine)
    with db.engine.begin() as connection:
        rows = [{"k": k, "status": s, "q": q} for k, s, q in recorded]
        connection.execute(table.insert(), [r | {"id": 100 + i} for i, r in enumerate(rows)] if primary_key else rows)
        if moved:
            connection.execute(moves.insert(), [{"k": k, "kind": kind, "q": q} for k, kind, q in moved])
    config = rule(table.name, recorded_where, source_where, insert_missing, takes_away)
    before = rows_of(db, table)

    engine = open_engine(db.url)  # as trueup opens it (SQLite binds decimals through its adapter)
    try:
        with engine.connect() as connection:
            scope = Scope(keys=((key,),), where=scope_where)
            result = apply(connection, config, engine.url, scope=scope, backup_dir=None, yes=True)
        after = rows_of(db, table)
        if result.run_id is not None:
            with engine.connect() as connection:
                undo_run(connection, result.run_id)
    finally:
        engine.dispose()

    k_at = 1 if primary_key else 0
    others_before = Counter({row: n for row, n in before.items() if row[k_at] != key})
    others_after = Counter({row: n for row, n in after.items() if row[k_at] != key})
    assert others_after == others_before
    assert result.changed == sum(((after - before) + (before - after)).values()) - result.updated
    assert rows_of(db, table) == before  # undone, or nothing written
