"""The SQL engine agrees with a plain-Python reference on random data, on every database."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.databases import Database
from trueup.config import parse_config
from trueup.reconcile.check import RuleScan
from trueup.reconcile.resolve import resolve_rule

keys = st.one_of(st.none(), st.integers(0, 6))
quantities = st.one_of(st.none(), st.integers(-50, 50))
recorded_rows = st.lists(st.tuples(keys, quantities), max_size=8)
source_rows = st.lists(st.tuples(keys, quantities), max_size=12)

metadata = sa.MetaData()
recorded = sa.Table("rec", metadata, sa.Column("k", sa.Integer), sa.Column("q", sa.Integer))
sources = [sa.Table(f"src{i}", metadata, sa.Column("k", sa.Integer), sa.Column("q", sa.Integer)) for i in (0, 1)]


def reference(rec_rows, src_rows, signs, insert_missing):
    """Drift and finding counts, computed the obvious way in Python."""
    rec_sum, rec_count, rec_null = defaultdict(Decimal), defaultdict(int), defaultdict(int)
    expected, records, null_qty = defaultdict(Decimal), defaultdict(int), defaultdict(int)
    for k, q in rec_rows:
        rec_sum[k] += q or 0
        rec_count[k] += 1
        rec_null[k] += q is None
    for rows, sign in zip(src_rows, signs, strict=True):
        for k, q in rows:
            expected[k] += sign * (q or 0)
            records[k] += 1
            null_qty[k] += q is None
    drift, found = {}, defaultdict(int)
    for k in set(rec_count) | set(records):
        if k is None:
            found["null_key"] += records[k] + rec_count[k]
            continue
        found["duplicate_key"] += rec_count[k] > 1
        found["null_recorded"] += rec_null[k] > 0
        found["null_quantity"] += null_qty[k]
        found["negative_expected"] += expected[k] < 0
        found["negative_recorded"] += rec_sum[k] < 0
        if rec_count[k] == 0 and not insert_missing:
            found["missing_row"] += 1
        elif rec_count[k] <= 1 and expected[k] != rec_sum[k]:
            drift[(k,)] = (rec_sum[k], expected[k], expected[k] - rec_sum[k])
    return drift, {kind: n for kind, n in found.items() if n}


def rule_config(signs, insert_missing):
    expected = [{"table": f"src{i}", "key": ["k"], "quantity": "q", "sign": s} for i, s in enumerate(signs)]
    recorded_table = {"table": "rec", "key": ["k"], "quantity": "q", "insert_missing": insert_missing}
    return parse_config({"rules": [{"name": "r", "recorded": recorded_table, "expected": expected}]}).rules[0]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rec_rows=recorded_rows,
    src_rows=st.lists(source_rows, min_size=1, max_size=2),
    signs=st.lists(st.sampled_from([1, -1]), min_size=2, max_size=2),
    insert_missing=st.booleans(),
)
def test_engine_matches_reference(db: Database, rec_rows, src_rows, signs, insert_missing) -> None:
    signs = signs[: len(src_rows)]
    metadata.drop_all(db.engine)
    metadata.create_all(db.engine)
    with db.engine.begin() as connection:
        for table, rows in [(recorded, rec_rows), *zip(sources, src_rows, strict=False)]:
            if rows:
                connection.execute(table.insert(), [{"k": k, "q": q} for k, q in rows])

    with db.engine.connect() as connection:
        rule = resolve_rule(connection, rule_config(signs, insert_missing))
        scan = RuleScan(connection, rule, keep=None)
        drift = {d.key: (d.recorded, d.expected, d.delta) for d in scan}
        result = scan.result()

    want_drift, want_findings = reference(rec_rows, src_rows, signs, insert_missing)
    assert drift == want_drift
    assert {f.kind: f.count for f in result.findings} == want_findings
    assert result.drifted == len(want_drift)
    assert result.abs_drift == sum((abs(d[2]) for d in want_drift.values()), Decimal(0))
    deltas = [abs(d.delta) for d in result.worst]
    assert deltas == sorted(deltas, reverse=True)
