"""The Ledger API on SQLite, PostgreSQL and MariaDB: figures checked against hand-computed truths."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from tests.ledger_helpers import at, balances, count
from trueup.errors import DatabaseError, TrueupError
from trueup.ledger import (
    AlreadyReverted,
    IdempotencyConflict,
    InsufficientStock,
    InvalidRequest,
    Ledger,
    LedgerError,
    NotFound,
    ReservationClosed,
    RevertBlocked,
)
from trueup.ledger import schema as t
from trueup.ledger.migrate import VERSION_TABLE, head


@pytest.fixture
def ledger(db):
    with Ledger(db.url) as ledger:
        yield ledger


def stocked(ledger: Ledger) -> None:
    """Three lots of 'widget' in the shop: 4 @ 2.00, 10 @ 2.50, 5 @ 3.00 (oldest first)."""
    ledger.receive("widget", "shop", 4, unit_cost="2.00", lot="A", at=at(1))
    ledger.receive("widget", "shop", 10, unit_cost="2.50", lot="B", at=at(2))
    ledger.receive("widget", "shop", 5, unit_cost="3.00", lot="C", at=at(3))


def test_issue_takes_oldest_lots_first_and_returns_their_cost(ledger):
    stocked(ledger)
    sale = ledger.issue("widget", "shop", 7, at=at(4))
    assert sale.cost == Decimal("15.50")  # 4 × 2.00 + 3 × 2.50
    assert [(m.from_lot, m.quantity, m.to_location) for m in sale.movements] == [
        ("A", 4, "customer"),
        ("B", 3, "customer"),
    ]
    assert ledger.balance("widget") == 12
    assert ledger.balance("widget", "shop", lot="B") == 7
    assert [(v.lot, v.quantity, v.value) for v in ledger.valuation("widget")] == [
        ("B", 7, Decimal("17.5")),
        ("C", 5, Decimal("15")),
    ]
    assert ledger.verify().ok


def test_issue_from_named_lots_and_transfer_keeps_lots(ledger):
    stocked(ledger)
    scrap = ledger.issue("widget", "shop", 2, reason="scrap", lots=["C"])
    assert (scrap.cost, scrap.movements[0].to_location) == (Decimal(6), "scrap")
    moved = ledger.transfer("widget", "shop", "van", 6, at=at(5))
    assert [(m.from_lot, m.quantity) for m in moved.movements] == [("A", 4), ("B", 2)]
    assert balances(ledger, "widget") == {
        ("supplier", "A"): -4, ("supplier", "B"): -10, ("supplier", "C"): -5,
        ("shop", "B"): 8, ("shop", "C"): 3, ("van", "A"): 4, ("van", "B"): 2, ("scrap", "C"): 2,
    }  # fmt: skip
    exact = ledger.issue("widget", "shop", 3, lots={"C": 1, "B": 2})
    assert exact.cost == Decimal("8.00")  # 1 × 3.00 + 2 × 2.50
    for post in (
        lambda: ledger.issue("widget", "shop", 5, lots={"B": 3}),
        lambda: ledger.transfer("widget", "shop", "van", 5, lots={"B": 3}),
    ):
        with pytest.raises(InvalidRequest, match="the named lots add up to 3, not 5"):
            post()
    assert ledger.balance("widget", "shop", lot="B") == 6  # nothing moved


def test_refusals_write_nothing_and_say_why(ledger):
    stocked(ledger)
    before = count(ledger, "ledger_movements")
    with pytest.raises(InsufficientStock) as refused:
        ledger.issue("widget", "shop", 20)
    assert str(refused.value) == "not enough 'widget' at 'shop': 20 wanted, 19 available (on hand 19)"
    assert refused.value.exit_code == 1 and isinstance(refused.value, LedgerError)
    with pytest.raises(InsufficientStock, match="no stock of 'widget' lot\\(s\\) 'Z' at 'shop'"):
        ledger.issue("widget", "shop", 1, lots=["Z"])
    assert count(ledger, "ledger_movements") == before
    assert ledger.balance("widget") == 19


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda lg: lg.issue("widget", "shop", -1), "qty must be more than zero, not -1"),
        (lambda lg: lg.issue("widget", "shop", "1.0000001"), "qty 1.0000001 has more than 6 decimal places"),
        (lambda lg: lg.issue("widget", "shop", "x"), "qty must be a number, not 'x'"),
        (lambda lg: lg.issue("widget", "shop", 1, reason="gift"), "unknown reason 'gift' (use one of: sale, usage,"),
        (lambda lg: lg.receive("widget", "customer", 1, unit_cost=1), "'customer' is a virtual location"),
        (lambda lg: lg.transfer("widget", "shop", "shop", 1), "transfer from 'shop' to itself"),
        (lambda lg: lg.issue("widget", "shop", "1e40"), "qty 1e40 is too large"),
        (lambda lg: lg.issue("widget", "shop", "0.005", lots={}), "the named lots add up to 0, not 0.005"),
    ],
)  # fmt: skip
def test_bad_calls_are_invalid_requests_exit_2(ledger, call, message):
    stocked(ledger)
    with pytest.raises(InvalidRequest, match="^" + message.replace("(", "\\(").replace(")", "\\)")) as bad:
        call(ledger)
    assert bad.value.exit_code == 2 and isinstance(bad.value, TrueupError)


def test_unknown_things_are_not_found(ledger):
    with pytest.raises(NotFound, match="no transaction 999"):
        ledger.revert(999)
    with pytest.raises(NotFound, match="no lot 'NOPE'"):
        ledger.history("NOPE")
    with pytest.raises(NotFound, match="no location 'nowhere'"):
        ledger.issue("widget", "nowhere", 1)


def test_adjust_posts_the_difference_to_the_adjustment_location(ledger):
    stocked(ledger)
    loss = ledger.adjust("widget", "shop", 15)
    assert [(m.from_lot, m.quantity, m.to_location) for m in loss.movements] == [("A", 4, "adjustment")]
    gain = ledger.adjust("widget", "shop", 17)
    assert gain.lots == (f"L{gain.id}",) and gain.movements[0].unit_cost == Decimal(3)  # newest lot's cost
    same = ledger.adjust("widget", "shop", 17)
    assert same.movements == () and ledger.balance("widget", "shop") == 17
    assert ledger.balance("widget", "adjustment") == 2  # 4 lost, 2 found
    assert ledger.verify().ok


def test_reservations_hold_stock_until_released_committed_or_expired(ledger):
    stocked(ledger)
    hold = ledger.reserve("widget", "shop", 15, hold_for="order-7")
    assert ledger.available("widget", "shop") == 4
    with pytest.raises(InsufficientStock, match="5 wanted, 4 available \\(on hand 19, held 15\\)"):
        ledger.issue("widget", "shop", 5)
    with pytest.raises(InsufficientStock):
        ledger.reserve("widget", "shop", 5, hold_for="order-8")
    sale = ledger.commit(hold.id)
    assert sale.cost == Decimal("36")  # 4 × 2.00 + 10 × 2.50 + 1 × 3.00
    assert ledger.reservation(hold.id).state == "committed"
    assert (ledger.balance("widget"), ledger.available("widget", "shop")) == (4, 4)
    with pytest.raises(ReservationClosed, match=f"reservation {hold.id} was already committed"):
        ledger.release(hold.id)

    other = ledger.reserve("widget", "shop", 3, hold_for="order-9")
    ledger.release(other.id)
    assert ledger.available("widget", "shop") == 4

    soon = ledger.reserve(
        "widget", "shop", 4, hold_for="order-10", expires_at=datetime.now(UTC) + timedelta(seconds=0.5)
    )
    assert ledger.available("widget", "shop") == 0
    assert ledger.available("widget", "shop", at=soon.expires_at) == 4  # it holds nothing once expired
    with pytest.raises(InvalidRequest, match=r"expires_at .* is already past"):
        ledger.reserve("widget", "shop", 1, hold_for="late", expires_at=at(0))
    time.sleep(0.6)
    with pytest.raises(ReservationClosed, match=f"reservation {soon.id} expired at "):
        ledger.commit(soon.id)
    assert ledger.available("widget", "shop") == 4
    ledger.release(soon.id)


def test_split_and_merge_keep_lineage_cost_and_totals(ledger):
    ledger.receive("pipe", "yard", 500, unit_cost="0.40", lot="ROLL-1", at=at(1))
    pieces = ledger.split("ROLL-1", [100, 100, 50], at=at(2))
    number = pieces.transaction.id
    assert pieces == [f"L{number}-1", f"L{number}-2", f"L{number}-3"]
    assert ledger.balance("pipe", "yard", lot="ROLL-1") == 250 and ledger.balance("pipe") == 500
    lot = ledger.lot(pieces[0])
    assert (lot.parents, lot.unit_cost, lot.created_by, lot.received_at) == (("ROLL-1",), Decimal("0.4"), number, at(1))

    ledger.receive("pipe", "yard", 30, unit_cost="0.70", lot="OFFCUT", at=at(3))
    bundles = ledger.merge([pieces[2], "OFFCUT"], 35, 2, at=at(4))  # 50 @ 0.40 + 30 @ 0.70 -> 2 × 35 + 10
    assert len(bundles) == 3
    made = [ledger.lot(name) for name in bundles]
    assert [m.parents for m in made] == [(pieces[2],), (pieces[2], "OFFCUT"), ("OFFCUT",)]
    assert [m.unit_cost for m in made] == [Decimal("0.4"), Decimal("0.571429"), Decimal("0.7")]  # (15×.4+20×.7)/35
    assert [ledger.balance("pipe", "yard", lot=n) for n in bundles] == [35, 35, 10]
    assert ledger.balance("pipe") == 530
    with pytest.raises(InsufficientStock, match="hold 200 of 'pipe' at 'yard': 3 bundle\\(s\\) of 100 need 300"):
        ledger.merge([pieces[0], pieces[1]], 100, 3)
    history = ledger.history("ROLL-1")
    assert [(e.kind, e.quantity, e.to_lot) for e in history] == [
        ("receive", 500, "ROLL-1"), ("split", 100, pieces[0]), ("split", 100, pieces[1]), ("split", 50, pieces[2]),
    ]  # fmt: skip
    assert ledger.verify().ok


def test_revert_restores_exactly_once_and_refuses_when_stock_moved_on(ledger):
    stocked(ledger)
    before = balances(ledger, "widget")
    sale = ledger.issue("widget", "shop", 7)
    undo = ledger.revert(sale.id)
    assert (undo.reverts, undo.cost) == (sale.id, sale.cost)
    assert ledger.transaction(sale.id).reverted_by == undo.id  # the original is marked, never rewritten
    assert balances(ledger, "widget") == before
    with pytest.raises(AlreadyReverted, match=f"transaction {sale.id} was already reverted by transaction {undo.id}"):
        ledger.revert(sale.id)
    with pytest.raises(RevertBlocked, match="is itself the revert"):
        ledger.revert(undo.id)

    receipt = ledger.receive("widget", "shop", 6, unit_cost=1, lot="D")
    ledger.receive("widget", "shop", 1, unit_cost=1, lot="E")
    used = ledger.issue("widget", "shop", 2, lots=["D"])
    with pytest.raises(RevertBlocked) as blocked:
        ledger.revert(receipt.id)
    assert str(blocked.value) == (
        f"transaction {receipt.id} cannot be reverted: its stock has moved on (transaction {used.id} line 1: "
        "2 of lot 'D' from 'shop' to 'customer'); revert those first, or force it if no balance would go negative"
    )
    assert [m.transaction_id for m in blocked.value.blocking] == [used.id]
    with pytest.raises(InsufficientStock, match="not enough 'widget' lot 'D' at 'shop': 6 wanted, 4 available"):
        ledger.revert(receipt.id, force=True)
    ledger.revert(used.id)
    assert ledger.revert(receipt.id).reverts == receipt.id  # unblocked once the issue is undone
    e_receipt = ledger.transaction(receipt.id + 1)
    ledger.transfer("widget", "shop", "van", 1, lots=["E"])
    ledger.receive("widget", "shop", 1, unit_cost=1, lot="F")
    assert ledger.history("E")[-1].to_location == "van"
    with pytest.raises(RevertBlocked):
        ledger.revert(e_receipt.id)
    assert ledger.verify().ok


def test_forced_revert_goes_through_when_no_balance_goes_negative(ledger):
    ledger.receive("bolt", "shop", 10, unit_cost=1, lot="K")
    moved = ledger.transfer("bolt", "shop", "van", 5)
    ledger.transfer("bolt", "van", "shop", 2)  # takes from (van, K), which `moved` credited
    with pytest.raises(RevertBlocked):
        ledger.revert(moved.id)
    with pytest.raises(InsufficientStock, match="'bolt' lot 'K' at 'van': 5 wanted, 3 available"):
        ledger.revert(moved.id, force=True)
    ledger.transfer("bolt", "shop", "van", 2)
    ledger.revert(moved.id, force=True)
    assert (ledger.balance("bolt", "van"), ledger.balance("bolt", "shop")) == (0, 10)


def test_idempotency_key_returns_the_original_or_names_the_difference(ledger):
    first = ledger.receive("nut", "shop", 10, unit_cost="0.10", key="po-17")
    again = ledger.receive("nut", "shop", 10, unit_cost="0.10", key="po-17")
    assert again == first
    assert count(ledger, "ledger_transactions") == 1 and ledger.balance("nut") == 10
    with pytest.raises(IdempotencyConflict) as conflict:
        ledger.receive("nut", "shop", 12, unit_cost="0.10", key="po-17")
    assert str(conflict.value) == (
        f"idempotency key 'po-17' was used for transaction {first.id} "
        "with a different request (qty: '10' then, '12' now)"
    )
    assert conflict.value.exit_code == 1
    with pytest.raises(IdempotencyConflict, match="item: 'nut' then, 'bolt' now"):
        ledger.receive("bolt", "shop", 10, unit_cost="0.10", key="po-17")


def test_balance_as_of_replays_the_log(ledger):
    stocked(ledger)
    ledger.transfer("widget", "shop", "van", 5, at=at(10))
    ledger.issue("widget", "van", 2, at=at(20))
    assert ledger.balance("widget", as_of=at(2.5)) == 14
    assert ledger.balance("widget", "van", as_of=at(15)) == 5
    assert ledger.balance("widget", "van", as_of=at(25)) == 3
    assert ledger.balance("widget", "shop", lot="B", as_of=at(15)) == 9
    assert ledger.balance("widget", as_of=at(30)) == ledger.balance("widget") == 17


def test_location_allowing_negative_stock(ledger):
    ledger.add_location("backorders", allow_negative=True)
    ledger.receive("cap", "backorders", 2, unit_cost=5, lot="Q")
    sale = ledger.issue("cap", "backorders", 5)
    assert sale.cost == 25 and ledger.balance("cap", "backorders") == -3
    report = ledger.verify()
    assert report.ok and not report.checks[1].failing


def test_verify_finds_a_tampered_balance(ledger, db):
    stocked(ledger)
    scale = 10**6 if db.kind == "sqlite" else 1
    db.execute(
        "UPDATE ledger_balances SET quantity = quantity + :d WHERE location = 'shop' AND lot = 'B'", {"d": 3 * scale}
    )
    report = ledger.verify()
    assert not report.ok
    [rule] = report.rules
    assert [(d.key, d.recorded, d.expected, d.delta) for d in rule.worst] == [(("widget", "shop", "B"), 13, 10, -3)]
    assert [c.name for c in report.checks if c.failing] == ["items_sum_to_zero"]


def test_the_log_is_append_only_in_the_database(ledger, db):
    stocked(ledger)
    for statement in ("UPDATE ledger_movements SET quantity = 1", "DELETE FROM ledger_movements",
                      "DELETE FROM ledger_transactions", "UPDATE ledger_lots SET lot = 'X'"):  # fmt: skip
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            db.execute(statement)
    assert count(ledger, "ledger_movements") == 3


def test_schema_is_migrated_once_and_recorded(db):
    Ledger(db.url).close()
    Ledger(db.url).close()  # a second open finds it at head and leaves it alone
    assert db.scalar(f"SELECT version_num FROM {VERSION_TABLE}") == head()
    assert db.scalar("SELECT COUNT(*) FROM ledger_locations WHERE virtual = TRUE") == 5


def test_migration_downgrades_cleanly_and_upgrades_again(db):
    from alembic import command

    from trueup.ledger.migrate import alembic_config

    with Ledger(db.url) as ledger:
        ledger.receive("widget", "shop", 1, unit_cost=1)
        config = alembic_config()
        with ledger.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "base")
        left = [name for name in sa.inspect(ledger.engine).get_table_names() if name.startswith("ledger_")]
        assert left == [VERSION_TABLE]  # Alembic keeps its version table, now empty
    with Ledger(db.url) as ledger:
        assert ledger.balance("widget") == 0 and ledger.verify().ok


def test_a_long_read_does_not_hold_up_postings_on_sqlite(sqlite_db):
    with Ledger(sqlite_db.url) as ledger:
        stocked(ledger)
        with ledger.reader.connect() as reading:  # e.g. verify() over a big ledger, mid-way
            assert reading.execute(sa.text("SELECT COUNT(*) FROM ledger_movements")).scalar_one() == 3
            started = time.perf_counter()
            ledger.issue("widget", "shop", 1)
            assert time.perf_counter() - started < 5  # not the 30 s busy timeout
            assert reading.execute(sa.text("SELECT COUNT(*) FROM ledger_movements")).scalar_one() == 3  # snapshot
        assert ledger.balance("widget") == 18


def test_migration_0002_copies_lot_order_onto_existing_balances(db):
    from alembic import command

    from trueup.ledger.migrate import alembic_config

    with Ledger(db.url) as ledger:
        ledger.receive("widget", "shop", 5, unit_cost=2, lot="NEW")
        ledger.receive("widget", "shop", 5, unit_cost=1, lot="OLD", at=datetime(2020, 1, 1, tzinfo=UTC))
        config = alembic_config()
        for target, upgrade in (("0001", False), ("head", True)):  # as a ledger made before 0002 is upgraded
            with ledger.engine.begin() as connection:
                config.attributes["connection"] = connection
                (command.upgrade if upgrade else command.downgrade)(config, target)
        sale = ledger.issue("widget", "shop", 6)
        assert [(m.from_lot, m.quantity) for m in sale.movements] == [("OLD", 5), ("NEW", 1)]
        assert sale.cost == 7 and ledger.verify().ok


def test_a_failing_pipelined_write_is_an_integrity_error_and_rolls_back(ledger):
    stocked(ledger)
    duplicate = {"item": "widget", "location": "shop", "lot": "A", "quantity": 1}
    with (  # on PostgreSQL the error only comes at the pipeline's sync
        pytest.raises(sa.exc.IntegrityError),
        ledger.engine.begin() as connection,
        ledger.dialect.pipeline(connection),
    ):
        connection.execute(sa.insert(t.items), {"item": "gadget", "version": 0})
        connection.execute(sa.insert(t.balances).from_select(
            ["item", "location", "lot", "quantity", "unit_cost", "received_at", "created_by", "position"],
            sa.select(*(sa.literal(v) for v in duplicate.values()), t.lots.c.unit_cost, t.lots.c.received_at,
                      t.lots.c.created_by, t.lots.c.position).where(t.lots.c.lot == "A"),
        ))  # fmt: skip
    assert count(ledger, "ledger_items") == 1 and ledger.verify().ok


def test_a_posting_rolled_back_as_a_deadlock_victim_is_posted_again_once(ledger, monkeypatch):
    from trueup.ledger import posting

    stocked(ledger)
    real_guard, calls = posting.guard, []

    def guard_losing_once(book, draft):
        calls.append(draft)
        real_guard(book, draft)
        if len(calls) == 1:  # after reading and checking, as a deadlock on the first write would
            raise sa.exc.OperationalError("INSERT …", {}, Exception("Deadlock found when trying to get lock"))

    monkeypatch.setattr(posting, "guard", guard_losing_once)
    monkeypatch.setattr(type(ledger.dialect), "is_retryable", lambda self, error: "Deadlock" in str(error.orig))
    sale = ledger.issue("widget", "shop", 5, at=at(4))
    assert len(calls) == 2
    assert sale.cost == Decimal("10.5")  # 4 × 2.00 + 1 × 2.50, taken once
    assert ledger.balance("widget", "shop") == 14
    assert count(ledger, "ledger_transactions") == 4
    assert ledger.verify().ok

    calls.clear()
    monkeypatch.setattr(type(ledger.dialect), "is_retryable", lambda self, error: False)
    with pytest.raises(DatabaseError, match="Deadlock found"):  # one line naming the database, exit 2 in the CLI
        ledger.issue("widget", "shop", 1, at=at(5))
    assert len(calls) == 1  # not retryable: raised at once, nothing posted
    assert count(ledger, "ledger_transactions") == 4
