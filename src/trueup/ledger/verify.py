"""`verify()`: rebuild every cached balance from the movement log and compare, with the check engine.

The ledger's own tables are just another rule for `trueup check`:

    recorded  ledger_balances   key (item, location, lot)            quantity
    expected  ledger_movements  key (item, to_location, to_lot)      quantity, sign  1   (arrivals)
              ledger_movements  key (item, from_location, from_lot)  quantity, sign -1   (departures)

so a balance row that disagrees with its movements is drift, and a movement
whose (location, lot) has no balance row is a `missing_row` finding. Two
checks ride along: every item sums to zero over all locations (each movement
takes what it gives), and no balance is negative where its location forbids it.

On SQLite quantities are stored in millionths (see `schema.Exact`); the
report's figures are scaled back before they are returned.
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from trueup.config import Check, Config, Recorded, Rule, Source
from trueup.ledger import schema as t
from trueup.reconcile.check import CheckReport, CheckRun
from trueup.reconcile.drift import DriftRow, RuleResult, bucket_order, delta_bucket

RULE = Rule(
    name="ledger_balances",
    recorded=Recorded(table="ledger_balances", key=["item", "location", "lot"], quantity="quantity"),
    expected=[
        Source(table="ledger_movements", key=["item", "to_location", "to_lot"], quantity="quantity"),
        Source(table="ledger_movements", key=["item", "from_location", "from_lot"], quantity="quantity", sign=-1),
    ],
)


def checks(dialect: sa.Dialect) -> list[Check]:
    b, places = t.balances, t.locations
    unbalanced = sa.select(b.c.item).group_by(b.c.item).having(sa.func.sum(b.c.quantity) != 0)
    negative = (
        sa.select(b.c.item, b.c.location, b.c.lot)
        .join(places, places.c.name == b.c.location)
        .where(b.c.quantity < 0, places.c.allow_negative == sa.false())
    )
    return [
        Check(name="items_sum_to_zero", sql=_sql(unbalanced, dialect)),
        Check(name="no_forbidden_negative_balance", sql=_sql(negative, dialect)),
    ]


def verify(connection: Connection) -> CheckReport:
    """The check report over the ledger's tables; every drifted balance is listed (a sound ledger has none)."""
    config = Config(rules=[RULE], checks=checks(connection.dialect))
    report = CheckRun(connection, config, keep=None).report()
    rules = tuple(_without_sign_findings(r) for r in report.rules)
    if connection.dialect.name == "sqlite":
        rules = tuple(_unscaled(r) for r in rules)
    return report._replace(rules=rules)


def _without_sign_findings(result: RuleResult) -> RuleResult:
    """Virtual locations are negative by design (the supplier has given what the shop holds), so
    the engine's negative-figure findings say nothing here; the check above covers real locations."""
    findings = tuple(f for f in result.findings if f.kind not in ("negative_expected", "negative_recorded"))
    return result._replace(findings=findings)


def _sql(query: sa.Select, dialect: sa.Dialect) -> str:
    return str(query.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))


def _unscaled(result: RuleResult) -> RuleResult:
    def scale(value: Any) -> Any:
        return t.plain(Decimal(value) / 10**t.SCALE) if isinstance(value, (int, Decimal)) else value

    def drift(row: DriftRow) -> DriftRow:
        return row._replace(recorded=scale(row.recorded), expected=scale(row.expected), delta=scale(row.delta))

    findings = tuple(
        f._replace(
            sample=tuple({**s, "recorded": scale(s["recorded"]), "expected": scale(s["expected"])} for s in f.sample)
        )
        for f in result.findings
    )
    worst = tuple(map(drift, result.worst))
    buckets = Counter(delta_bucket(row.delta) for row in worst)
    distribution = tuple(sorted(buckets.items(), key=lambda kv: bucket_order(kv[0])))
    return result._replace(abs_drift=scale(result.abs_drift), worst=worst, findings=findings, distribution=distribution)
