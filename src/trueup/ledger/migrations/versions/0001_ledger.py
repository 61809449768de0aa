"""The ledger's tables, its sequences, the virtual locations, and append-only triggers.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from trueup.ledger.schema import Exact, UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

NAME = sa.String(100)
ID = sa.BigInteger()
APPEND_ONLY = ("ledger_movements", "ledger_transactions", "ledger_lots", "ledger_lot_parents")
VIRTUAL = ("supplier", "customer", "consumption", "scrap", "adjustment")


def upgrade() -> None:
    locations = op.create_table(
        "ledger_locations",
        sa.Column("name", NAME, primary_key=True),
        sa.Column("virtual", sa.Boolean, nullable=False),
        sa.Column("allow_negative", sa.Boolean, nullable=False),
    )
    op.bulk_insert(locations, [{"name": n, "virtual": True, "allow_negative": True} for n in VIRTUAL])
    op.create_table(
        "ledger_items",
        sa.Column("item", NAME, primary_key=True),
        sa.Column("version", ID, nullable=False),
    )
    op.create_table(
        "ledger_transactions",
        sa.Column("item", NAME, primary_key=True),
        sa.Column("id", ID, primary_key=True, autoincrement=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("posted_at", UTCDateTime, nullable=False),
        sa.Column("key", sa.String(200)),
        sa.Column("reverts", ID),
        sa.Column("cost", Exact, nullable=False),
        sa.UniqueConstraint("item", "reverts", name="uq_ledger_transactions_reverts"),
    )
    op.create_index("ux_ledger_transactions_id", "ledger_transactions", ["id"], unique=True)
    op.create_table(
        "ledger_movements",
        sa.Column("item", NAME, primary_key=True),
        sa.Column("transaction_id", ID, primary_key=True, autoincrement=False),
        sa.Column("line", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("quantity", Exact, nullable=False),
        sa.Column("from_location", NAME, nullable=False),
        sa.Column("from_lot", NAME, nullable=False),
        sa.Column("to_location", NAME, nullable=False),
        sa.Column("to_lot", NAME, nullable=False),
        sa.Column("unit_cost", Exact, nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.CheckConstraint("quantity > 0", name="ck_ledger_movements_positive"),
    )
    op.create_index("ix_ledger_movements_from", "ledger_movements", ["item", "from_lot", "from_location"])
    op.create_index("ix_ledger_movements_to", "ledger_movements", ["item", "to_lot", "to_location"])
    op.create_index("ix_ledger_movements_at", "ledger_movements", ["item", "at"])
    op.create_table(
        "ledger_lots",
        sa.Column("item", NAME, primary_key=True),
        sa.Column("lot", NAME, primary_key=True),
        sa.Column("unit_cost", Exact, nullable=False),
        sa.Column("received_at", UTCDateTime, nullable=False),
        sa.Column("created_by", ID, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
    )
    op.create_index("ix_ledger_lots_lot", "ledger_lots", ["lot"])
    op.create_table(
        "ledger_lot_parents",
        sa.Column("item", NAME, primary_key=True),
        sa.Column("lot", NAME, primary_key=True),
        sa.Column("parent", NAME, primary_key=True),
    )
    op.create_table(
        "ledger_balances",
        sa.Column("item", NAME, primary_key=True),
        sa.Column("location", NAME, primary_key=True),
        sa.Column("lot", NAME, primary_key=True),
        sa.Column("quantity", Exact, nullable=False),
    )
    op.create_table(
        "ledger_reservations",
        sa.Column("item", NAME, primary_key=True),
        sa.Column("id", ID, primary_key=True, autoincrement=False),
        sa.Column("location", NAME, nullable=False),
        sa.Column("quantity", Exact, nullable=False),
        sa.Column("hold_for", sa.String(200), nullable=False),
        sa.Column("expires_at", UTCDateTime),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("transaction_id", ID),
    )
    op.create_index("ux_ledger_reservations_id", "ledger_reservations", ["id"], unique=True)
    op.create_table(
        "ledger_keys",
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("item", NAME, nullable=False),
        sa.Column("transaction_id", ID, nullable=False),
        sa.Column("request", sa.Text, nullable=False),
    )
    kind = op.get_context().dialect.name
    if kind != "sqlite":
        op.execute(sa.schema.CreateSequence(sa.Sequence("ledger_transaction_ids")))
        op.execute(sa.schema.CreateSequence(sa.Sequence("ledger_reservation_ids")))
    for table in APPEND_ONLY:
        for statement in _append_only(kind, table):
            op.execute(statement)


def _append_only(kind: str, table: str) -> list[str]:
    """Triggers refusing UPDATE and DELETE on `table`: the log is never rewritten, only appended to."""
    message = f"{table} is append-only: post a compensating transaction (revert) instead"
    if kind == "postgresql":
        return [
            f"""CREATE FUNCTION {table}_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION '{message} (% refused)', TG_OP USING ERRCODE = 'restrict_violation'; END $$""",
            f"""CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table}
            FOR EACH ROW EXECUTE FUNCTION {table}_append_only()""",
            f"""CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
            FOR EACH STATEMENT EXECUTE FUNCTION {table}_append_only()""",
        ]
    if kind == "sqlite":
        return [
            f"CREATE TRIGGER {table}_no_{op_} BEFORE {op_.upper()} ON {table} "
            f"BEGIN SELECT RAISE(ABORT, '{message}'); END"
            for op_ in ("update", "delete")
        ]
    return [
        f"CREATE TRIGGER {table}_no_{op_} BEFORE {op_.upper()} ON {table} FOR EACH ROW "
        f"SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = '{message}'"
        for op_ in ("update", "delete")
    ]


def downgrade() -> None:
    kind = op.get_context().dialect.name
    for table in (
        "ledger_keys",
        "ledger_reservations",
        "ledger_balances",
        "ledger_lot_parents",
        "ledger_lots",
        "ledger_movements",
        "ledger_transactions",
        "ledger_items",
        "ledger_locations",
    ):
        op.drop_table(table)
    if kind == "postgresql":
        for table in APPEND_ONLY:
            op.execute(f"DROP FUNCTION {table}_append_only()")
    if kind != "sqlite":
        op.execute(sa.schema.DropSequence(sa.Sequence("ledger_transaction_ids")))
        op.execute(sa.schema.DropSequence(sa.Sequence("ledger_reservation_ids")))
