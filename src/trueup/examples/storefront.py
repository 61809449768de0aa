"""Storefront overcapacity after a rollback bug (a Django point-of-sale system).

Stock at a storefront per (storefront, product) must equal the sum of the
FULFILLED transfer line items sent there. A transaction-rollback bug bumped
the storefront figure even when the transfer request was then rolled back
(left PENDING or CANCELLED), so one product showed 284 at the storefront
against 10 ever received at the warehouse. A custom check asserts the
invariant the shop cares about: per product, storefront stock never exceeds
warehouse intake.
"""

from __future__ import annotations

import random

import sqlalchemy as sa
from sqlalchemy.engine import Connection

metadata = sa.MetaData()

product = sa.Table(
    "inventory_product",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(100), nullable=False),
)
stock_product = sa.Table(  # warehouse intake
    "inventory_stockproduct",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("product_id", sa.Integer, nullable=False),
    sa.Column("quantity", sa.Integer, nullable=False),
)
transfer_request = sa.Table(
    "inventory_transferrequest",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("storefront_id", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
)
line_item = sa.Table(
    "inventory_transferrequestlineitem",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("request_id", sa.Integer, nullable=False, index=True),
    sa.Column("product_id", sa.Integer, nullable=False),
    sa.Column("requested_quantity", sa.Integer, nullable=False),
)
storefront_inventory = sa.Table(
    "inventory_storefrontinventory",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("storefront_id", sa.Integer, nullable=False),
    sa.Column("product_id", sa.Integer, nullable=False),
    sa.Column("quantity", sa.Integer, nullable=False),
    sa.UniqueConstraint("storefront_id", "product_id"),
)

CONFIG = """\
# Storefront stock must equal the FULFILLED transfers sent to it.
[[rules]]
name = "storefront"
[rules.recorded]
table = "inventory_storefrontinventory"
key = ["storefront_id", "product_id"]
quantity = "quantity"
group = "storefront_id"
[[rules.expected]]
from = "inventory_transferrequestlineitem li JOIN inventory_transferrequest r ON r.id = li.request_id"
key = ["r.storefront_id", "li.product_id"]
quantity = "li.requested_quantity"
where = "r.status = 'FULFILLED'"
# For `trueup guard`: a changed line item finds its storefront through its request;
# a changed request (status flipped, storefront changed) fans out to its line items.
[rules.expected.guard.inventory_transferrequestlineitem]
key = ["r.storefront_id", "row.product_id"]
from = "inventory_transferrequest r"
where = "r.id = row.request_id"
[rules.expected.guard.inventory_transferrequest]
key = ["row.storefront_id", "li.product_id"]
from = "inventory_transferrequestlineitem li"
where = "li.request_id = row.id"

[[checks]]
name = "storefront within warehouse intake"
severity = "error"
sql = \"\"\"
SELECT s.product_id, s.at_storefronts, COALESCE(w.intake, 0) AS intake
FROM (SELECT product_id, SUM(quantity) AS at_storefronts
      FROM inventory_storefrontinventory GROUP BY product_id) s
LEFT JOIN (SELECT product_id, SUM(quantity) AS intake
           FROM inventory_stockproduct GROUP BY product_id) w ON w.product_id = s.product_id
WHERE s.at_storefronts > COALESCE(w.intake, 0)
\"\"\"
"""

CABLE = 1  # "10mm Metal Cable", the product from the incident


def generate(connection: Connection, *, items: int = 200, seed: int = 1) -> None:
    """`items` products over three storefronts; the cable shows 284 against 10 received."""
    rng = random.Random(seed)
    storefronts = (1, 2, 3)
    products = [{"id": p, "name": "10mm Metal Cable" if p == CABLE else f"Product {p}"} for p in range(1, items + 1)]
    intake, requests, lines, stock = [], [], [], {}
    for p in products:
        received = 10 if p["id"] == CABLE else rng.randint(50, 400)
        intake.append({"id": p["id"], "product_id": p["id"], "quantity": received})
        left = received
        for _ in range(rng.randint(1, 3)):
            storefront = rng.choice(storefronts)
            quantity = min(left, rng.randint(1, 20))
            if quantity <= 0:
                break
            status = rng.choice(("FULFILLED",) * 8 + ("PENDING", "CANCELLED"))
            request_id = len(requests) + 1
            requests.append({"id": request_id, "storefront_id": storefront, "status": status})
            lines.append(
                {"id": len(lines) + 1, "request_id": request_id, "product_id": p["id"], "requested_quantity": quantity}
            )
            key = (storefront, p["id"])
            fulfilled = quantity if status == "FULFILLED" else 0
            bumped = quantity if rng.random() < 0.15 else fulfilled  # the rollback bug
            stock[key] = stock.get(key, 0) + bumped
            left -= fulfilled
    stock[(1, CABLE)] = 284  # the incident's figure
    rows = [
        {"id": i, "storefront_id": s, "product_id": p, "quantity": q} for i, ((s, p), q) in enumerate(stock.items(), 1)
    ]
    connection.execute(product.insert(), products)
    connection.execute(stock_product.insert(), intake)
    connection.execute(transfer_request.insert(), requests)
    connection.execute(line_item.insert(), lines)
    connection.execute(storefront_inventory.insert(), rows)
