"""`trueup init`: a commented starter config, optionally listing what a database holds."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from trueup.db import redact

TEMPLATE = """\
# trueup.toml: which cached stock figures to reconcile, and against which records.
# Reference: README.md, "Config reference". Identifiers (table, key, quantity, ...)
# are quoted by trueup; `from`, `where` and check `sql` are your own SQL, run as written.

[database]
# A SQLAlchemy URL. ${{VAR}} expands from the environment; $TRUEUP_DATABASE_URL or
# --database override it. Examples: sqlite:///shop.db,
# postgresql://app@db.internal/shop, mysql://app:${{DB_PASSWORD}}@db.internal/shop
url = "{url}"

# One [[rules]] per cached figure. `expected` sources are summed per key, each with
# its sign (1 adds, -1 takes away), and compared with the recorded quantity.
[[rules]]
name = "stock"
[rules.recorded]                   # the cached figure that may have drifted
table = "{recorded_table}"
key = ["id"]                       # column(s) identifying one row
quantity = "quantity"
# unit_value = "unit_cost"         # optional: value the drift in money
# group = "location_id"            # optional: break drift down by this column
# where = "deleted_at IS NULL"     # optional: only these recorded rows
# insert_missing = false           # true: keys only the sources know are drift (apply inserts them)

[[rules.expected]]                 # records that add to the figure
table = "{source_table}"
key = ["item_id"]                  # same order as recorded.key
quantity = "quantity"
# sign = 1
# where = "status = 'RECEIVED'"
# time = "created_at"              # optional: flags future-dated records

# [[rules.expected]]               # records that take from it, e.g. with a join:
# from = "sale_lines l JOIN sales s ON s.id = l.sale_id"
# key = ["l.item_id"]
# quantity = "l.quantity"
# sign = -1
# where = "s.status = 'COMPLETED'"

# Custom checks: a query returning the rows that break an invariant (no rows = holds).
# [[checks]]
# name = "no negative stock"
# severity = "error"               # error (exit 1 when failing), warning or info
# sql = "SELECT id, quantity FROM stock WHERE quantity < 0"
"""


def starter_config(url: str | None = None, connection: Connection | None = None) -> str:
    """The starter config; with a connection, tables and their columns are listed as comments."""
    tables = _tables(connection) if connection is not None else []
    text = TEMPLATE.format(
        url=redact(url) if url else "sqlite:///shop.db",
        recorded_table=tables[0][0] if tables else "stock",
        source_table=tables[1][0] if len(tables) > 1 else "stock_movements",
    )
    if tables:
        listing = "\n".join(f"#   {name}: {', '.join(columns)}" for name, columns in tables)
        text += f"\n# Tables in this database, with their columns:\n{listing}\n"
    return text


def _tables(connection: Connection) -> list[tuple[str, list[str]]]:
    inspector = sa.inspect(connection)
    return [(name, [c["name"] for c in inspector.get_columns(name)]) for name in sorted(inspector.get_table_names())]
