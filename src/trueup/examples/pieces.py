"""Pieces counted instead of summed (a pipe and sprinkler manufacturer).

Spare stock is held as pieces; `inventory_stock.quantity` of a SPARE stock
row must equal Σ `piece_count` of its pieces that are IN_STOCK and not
soft-deleted. The code used `COUNT(*)` where `SUM(piece_count)` was meant, so
any stock holding a multi-piece entry shows too little.
"""

from __future__ import annotations

import random
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

metadata = sa.MetaData()

inventory_stock = sa.Table(
    "inventory_stock",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("stock_type", sa.String(16), nullable=False),
    sa.Column("quantity", sa.Integer, nullable=False),
    sa.Column("deleted_at", sa.DateTime, nullable=True),
)
spare_pieces = sa.Table(
    "sprinkler_spare_pieces",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("stock_id", sa.Integer, nullable=False, index=True),
    sa.Column("piece_count", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("deleted_at", sa.DateTime, nullable=True),
)

CONFIG = """\
# Spare stock quantity must be the pieces' SUM(piece_count), not COUNT(*).
[[rules]]
name = "spare_pieces"
[rules.recorded]
table = "inventory_stock"
key = ["id"]
quantity = "quantity"
where = "stock_type = 'SPARE' AND deleted_at IS NULL"
[[rules.expected]]
table = "sprinkler_spare_pieces"
key = ["stock_id"]
quantity = "piece_count"
where = "status = 'IN_STOCK' AND deleted_at IS NULL"
"""


def generate(connection: Connection, *, items: int = 200, seed: int = 1) -> None:
    rng = random.Random(seed)
    stock, pieces = [], []
    for stock_id in range(1, items + 1):
        kind = "SPARE" if stock_id % 5 else "BUNDLE"  # bundles are counted elsewhere, not by pieces
        deleted_stock = datetime(2025, 7, 1) if stock_id == 7 else None  # soft-deleted, pieces left behind
        summed = counted = 0
        for _ in range(rng.randint(1, 6) if kind == "SPARE" else 0):
            count = rng.choice((1, 1, 1, 2, 5, 10))
            status = rng.choice(("IN_STOCK",) * 5 + ("SOLD_OUT",))
            deleted = datetime(2025, 6, 1) if rng.random() < 0.05 else None
            pieces.append(
                {
                    "id": len(pieces) + 1,
                    "stock_id": stock_id,
                    "piece_count": count,
                    "status": status,
                    "deleted_at": deleted,
                }
            )
            if status == "IN_STOCK" and deleted is None:
                summed += count
                counted += 1
        buggy = stock_id % 3 == 0  # rows last written by the COUNT(*) code path
        quantity = counted if buggy else summed
        stock.append({"id": stock_id, "stock_type": kind, "quantity": quantity, "deleted_at": deleted_stock})
    connection.execute(inventory_stock.insert(), stock)
    connection.execute(spare_pieces.insert(), pieces)
