"""Property tests: random operation sequences against a plain reference model of the books.

The reference keeps, per (location, lot), a quantity, and takes FIFO by each
lot's receipt order: a few lines of obvious code that the ledger must agree
with after every step. Each example uses fresh item names in one shared ledger
per database (items never interact), so examples are cheap; SQLite and
PostgreSQL each run the whole property.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.databases import make_database
from tests.ledger_helpers import at, balances
from trueup.ledger import InsufficientStock, Ledger, RevertBlocked
from trueup.ledger.fifo import Pick, bundle

REAL = ("shop", "van")
_items = itertools.count()

operations = st.lists(
    st.one_of(
        st.tuples(st.just("receive"), st.sampled_from(REAL), st.integers(1, 9), st.sampled_from(["0.5", "1.25", "3"])),
        st.tuples(st.just("issue"), st.sampled_from(REAL), st.integers(1, 12)),
        st.tuples(st.just("transfer"), st.sampled_from(REAL), st.integers(1, 12)),
        st.tuples(st.just("adjust"), st.sampled_from(REAL), st.integers(0, 15)),
        st.tuples(st.just("revert"), st.integers(0, 30)),
    ),
    min_size=1,
    max_size=14,
)


class Reference:
    """The books as the simplest possible model: {(location, lot): quantity}, lots in receipt order."""

    def __init__(self):
        self.stock: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        self.order: list[str] = []
        self.cost: dict[str, Decimal] = {}

    def fifo(self, location: str, qty: Decimal) -> list[tuple[str, Decimal]] | None:
        taken, left = [], qty
        for lot in self.order:
            have = self.stock[(location, lot)]
            if left and have > 0:
                take = min(have, left)
                taken.append((lot, take))
                left -= take
        return None if left else taken

    def on_hand(self, location: str) -> Decimal:
        return sum((q for (loc, _), q in self.stock.items() if loc == location), Decimal(0))

    def apply(self, movements) -> None:
        for m in movements:
            self.stock[(m.from_location, m.from_lot)] -= m.quantity
            self.stock[(m.to_location, m.to_lot)] += m.quantity

    def nonzero(self) -> dict[tuple[str, str], Decimal]:
        return {key: q for key, q in self.stock.items() if q != 0}


@pytest.fixture(scope="module", params=("sqlite", "postgresql"))
def shared_ledger(request, tmp_path_factory):
    database, drop = make_database(request.param, tmp_path_factory.mktemp("props"))
    try:
        with Ledger(database.url) as ledger:
            for location in REAL:
                ledger.add_location(location)
            yield ledger
    finally:
        database.engine.dispose()
        drop()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations)
def test_random_operations_match_the_reference(shared_ledger, ops):
    ledger, item, ref = shared_ledger, f"prop-{next(_items)}", Reference()
    posted, snapshots = [], []
    for step, op in enumerate(ops):
        when = at(step)
        kind, location = op[0], op[1] if op[0] != "revert" else None
        before = ref.nonzero()
        if kind == "receive":
            tx = ledger.receive(item, location, op[2], unit_cost=op[3], at=when)
            ref.order.append(tx.lots[0])
            ref.cost[tx.lots[0]] = Decimal(op[3])
        elif kind in ("issue", "transfer"):
            expected = ref.fifo(location, Decimal(op[2]))
            try:
                if kind == "issue":
                    tx = ledger.issue(item, location, op[2], at=when)
                else:
                    tx = ledger.transfer(item, location, REAL[1 - REAL.index(location)], op[2], at=when)
            except InsufficientStock:
                assert expected is None
                continue
            assert [(m.from_lot, m.quantity) for m in tx.movements] == expected  # FIFO equals the reference
            assert tx.cost == sum(q * ref.cost[lot] for lot, q in expected)
        elif kind == "adjust":
            tx = ledger.adjust(item, location, op[2], at=when)
            if tx.lots:
                ref.order.append(tx.lots[0])
                ref.cost[tx.lots[0]] = tx.movements[0].unit_cost
            assert sum((m.quantity for m in tx.movements), Decimal(0)) == abs(op[2] - ref.on_hand(location))
        else:
            if not posted:
                continue
            target = posted[op[1] % len(posted)]
            try:
                tx = ledger.revert(target.id, at=when)
            except RevertBlocked as blocked:
                assert blocked.blocking or target.reverts is not None
                continue
            except Exception as error:  # already reverted: the only other refusal
                assert type(error).__name__ == "AlreadyReverted"
                continue
        ref.apply(tx.movements)
        posted.append(tx)
        snapshots.append((when, ref.nonzero()))
        assert balances(ledger, item) == ref.nonzero()  # cached balances equal the replayed movements
        assert all(q >= 0 for (loc, _), q in ref.nonzero().items() if loc in REAL)
        assert sum(ref.stock.values()) == 0  # conservation: every item sums to zero over all locations
        if kind != "revert" and tx.movements and step % 3 == 2:
            ledger.revert(tx.id, at=when)  # revert(t) restores the balances exactly
            assert balances(ledger, item) == before
            ref.stock = defaultdict(Decimal, before)
            snapshots[-1] = (when, before)
    for when, expected in snapshots:  # as_of equals replay up to that time
        for location in REAL:
            want = sum((q for (loc, _), q in expected.items() if loc == location), Decimal(0))
            assert ledger.balance(item, location, as_of=when) == want


@settings(max_examples=200, deadline=None)
@given(
    pieces=st.lists(st.integers(1, 20), min_size=1, max_size=8),
    size=st.integers(1, 15),
    data=st.data(),
)
def test_bundle_conserves_every_piece(pieces, size, data):
    total = sum(pieces)
    count = data.draw(st.integers(1, max(1, total // size)))
    if size * count > total:
        return
    picks = [Pick(f"P{i}", Decimal(q), Decimal(1)) for i, q in enumerate(pieces)]
    outputs = bundle(picks, Decimal(size), count)
    assert [sum(p.quantity for p in out) for out in outputs[:count]] == [size] * count
    assert sum(p.quantity for out in outputs for p in out) == total
    per_piece = defaultdict(Decimal)
    for out in outputs:
        for p in out:
            per_piece[p.lot] += p.quantity
    assert per_piece == {f"P{i}": q for i, q in enumerate(pieces)}
