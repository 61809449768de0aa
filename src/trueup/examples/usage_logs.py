"""Consumption logs never deducted (a baby-supplies app on PostgreSQL).

Each inventory item opens with `quantity_total`; every non-deleted
`diaper_change` usage log should have taken `quantity_used` off
`quantity_remaining`, but a bug skipped the deduction for most items:

    expected = quantity_total - Σ quantity_used (usage_type = 'diaper_change', not deleted)

The generator also plants the integrity problems the incident's team hunted
by hand: logs of deleted items (orphans), future-dated logs, logs with a NULL
item, and items whose logs exceed their opening figure (negative expected).
"""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

metadata = sa.MetaData()

inventory_items = sa.Table(
    "inventory_items",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("child_id", sa.Integer, nullable=False),
    sa.Column("quantity_total", sa.Integer, nullable=False),
    sa.Column("quantity_remaining", sa.Integer, nullable=False),
    sa.Column("cost_per_unit", sa.Numeric(10, 4), nullable=False),
)

usage_logs = sa.Table(
    "usage_logs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("inventory_item_id", sa.Uuid, nullable=True),
    sa.Column("usage_type", sa.String(32), nullable=False),
    sa.Column("quantity_used", sa.Integer, nullable=False),
    sa.Column("is_deleted", sa.Boolean, nullable=False, default=False),
    sa.Column("logged_at", sa.DateTime, nullable=False),
    sa.Index("ix_usage_logs_item", "inventory_item_id"),
)

CONFIG = """\
# Consumption logs never deducted: remaining = total - diaper changes logged.
[[rules]]
name = "diapers"
[rules.recorded]
table = "inventory_items"
key = ["id"]
quantity = "quantity_remaining"
unit_value = "cost_per_unit"
group = "child_id"
[[rules.expected]]                 # the opening figure
table = "inventory_items"
key = ["id"]
quantity = "quantity_total"
[[rules.expected]]                 # minus every diaper change logged against the item
table = "usage_logs"
key = ["inventory_item_id"]
quantity = "quantity_used"
sign = -1
where = "usage_type = 'diaper_change' AND is_deleted = false"
time = "logged_at"
"""


def generate(connection: Connection, *, items: int = 200, seed: int = 1) -> None:
    rng = random.Random(seed)
    now = datetime.now().replace(microsecond=0)
    item_rows, log_rows = [], []
    for index in range(items):
        item_id = uuid.UUID(int=rng.getrandbits(128), version=4)
        total = rng.choice((96, 120, 144, 186, 200))
        used = 0
        for _ in range(rng.randint(0, 12)):
            kind = rng.choice(("diaper_change", "diaper_change", "wipes", "cream"))
            quantity = rng.randint(1, 3)
            deleted = rng.random() < 0.05
            log_rows.append(_log(item_id, kind, quantity, deleted, now - timedelta(hours=rng.randint(1, 2000))))
            if kind == "diaper_change" and not deleted:
                used += quantity
        if index % 25 == 0:  # a heavy user: more changes than the pack held
            log_rows.append(_log(item_id, "diaper_change", total + 7, False, now - timedelta(days=3)))
            used += total + 7
        deducted = index % 4 == 0  # the bug: only one item in four was ever deducted
        remaining = total - used if deducted else total
        item_rows.append(
            {
                "id": item_id,
                "child_id": 1 + index % 7,
                "quantity_total": total,
                "quantity_remaining": remaining,
                "cost_per_unit": rng.choice(("0.2500", "0.3100", "0.4200")),
            }
        )
    for _ in range(max(1, items // 40)):  # logs of items that were deleted
        log_rows.append(_log(uuid.UUID(int=rng.getrandbits(128), version=4), "diaper_change", 2, False, now))
    log_rows.append(_log(item_rows[1]["id"], "diaper_change", 1, False, now + timedelta(days=30)))  # clock skew
    log_rows.append(_log(None, "diaper_change", 1, False, now))  # the app lost the item
    connection.execute(inventory_items.insert(), item_rows)
    connection.execute(usage_logs.insert(), log_rows)


def _log(item_id: uuid.UUID | None, kind: str, quantity: int, deleted: bool, at: datetime) -> dict:
    return {
        "inventory_item_id": item_id,
        "usage_type": kind,
        "quantity_used": quantity,
        "is_deleted": deleted,
        "logged_at": at,
    }
