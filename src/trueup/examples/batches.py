"""Batch system vs inventory table (a Node.js warehouse app).

Purchases create batches; sales draw batches down. `warehouse_inventory.packs`
caches the per-product total and must equal Σ `batches.quantity_remaining`.
Some sale paths updated the batches but not the cached figure (or the other
way round), so a few products are off by a handful of packs.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

metadata = sa.MetaData()

warehouse_inventory = sa.Table(
    "warehouse_inventory",
    metadata,
    sa.Column("product_code", sa.String(32), primary_key=True),
    sa.Column("packs", sa.Integer, nullable=False),
    sa.Column("pack_price", sa.Numeric(12, 2), nullable=False),
)
batches = sa.Table(
    "batches",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("product_code", sa.String(32), nullable=False, index=True),
    sa.Column("quantity_remaining", sa.Integer, nullable=False),
    sa.Column("received_at", sa.DateTime, nullable=False),
)

CONFIG = """\
# The cached pack count must equal what the batches still hold.
[[rules]]
name = "batches"
[rules.recorded]
table = "warehouse_inventory"
key = ["product_code"]
quantity = "packs"
unit_value = "pack_price"
[[rules.expected]]
table = "batches"
key = ["product_code"]
quantity = "quantity_remaining"
time = "received_at"
"""


def generate(connection: Connection, *, items: int = 200, seed: int = 1) -> None:
    rng = random.Random(seed)
    now = datetime.now().replace(microsecond=0)
    inventory, batch_rows = [], []
    for index in range(items):
        code = f"SKU-{index:05d}"
        total = 0
        for _ in range(rng.randint(1, 4)):
            remaining = rng.randint(0, 60)
            batch_rows.append(
                {
                    "id": len(batch_rows) + 1,
                    "product_code": code,
                    "quantity_remaining": remaining,
                    "received_at": now - timedelta(days=rng.randint(1, 90)),
                }
            )
            total += remaining
        if index % 9 == 0:  # a sale path that skipped the cached update
            total += rng.choice((-2, 2, 5, -5))
        inventory.append({"product_code": code, "packs": total, "pack_price": rng.choice(("12.50", "18.00", "7.25"))})
    connection.execute(warehouse_inventory.insert(), inventory)
    connection.execute(batches.insert(), batch_rows)
