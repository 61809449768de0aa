"""Each balance row carries its lot's unit cost and FIFO order, under a partial index of the non-zero rows.

FIFO asks for the oldest lots with stock at one (item, location). With the
order only on `ledger_lots`, that meant joining and sorting every lot the
location ever held, on every issue (and on a fresh PostgreSQL ledger, before
its first ANALYZE, a nested loop quadratic in the lots). Lots never change
(the table is append-only), so their unit cost and order can be copied onto
the balance rows, and the index

    ix_ledger_balances_fifo (item, location, received_at, created_by, position) WHERE quantity <> 0

hands out the oldest lots with stock in order, however many lots came before.
MySQL/MariaDB have no partial indexes: there the index also holds the empty rows.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from trueup.ledger.schema import Exact, UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

COLUMNS = (("unit_cost", Exact()), ("received_at", UTCDateTime()), ("created_by", sa.BigInteger()),
           ("position", sa.Integer()))  # fmt: skip
NON_ZERO = sa.text("quantity <> 0")


def upgrade() -> None:
    with op.batch_alter_table("ledger_balances") as batch:
        for name, type_ in COLUMNS:
            batch.add_column(sa.Column(name, type_, nullable=True))
    balances = sa.table("ledger_balances", sa.column("item"), sa.column("lot"), *(sa.column(n) for n, _ in COLUMNS))
    lots = sa.table("ledger_lots", sa.column("item"), sa.column("lot"), *(sa.column(n) for n, _ in COLUMNS))
    of_lot = sa.and_(lots.c.item == balances.c.item, lots.c.lot == balances.c.lot)
    op.execute(balances.update().values({n: sa.select(lots.c[n]).where(of_lot).scalar_subquery() for n, _ in COLUMNS}))
    with op.batch_alter_table("ledger_balances") as batch:
        for name, type_ in COLUMNS:
            batch.alter_column(name, existing_type=type_, nullable=False)
    op.create_index(
        "ix_ledger_balances_fifo",
        "ledger_balances",
        ["item", "location", "received_at", "created_by", "position"],
        postgresql_where=NON_ZERO,
        sqlite_where=NON_ZERO,
    )


def downgrade() -> None:
    op.drop_index("ix_ledger_balances_fifo", "ledger_balances")
    with op.batch_alter_table("ledger_balances") as batch:
        for name, _ in COLUMNS:
            batch.drop_column(name)
