"""Column mapping: which column of an export holds the SKU, the date, the quantity...

Exports name their columns in many ways. A header matches a field when,
lower-cased and stripped of everything but letters and digits, it equals one
of the field's aliases: `Item Code`, `item_code` and ` ITEM-CODE ` all read as
`itemcode`, an alias of `sku`. When several columns match a field (`Qty` and
`Quantity`, or a header written twice) trueup refuses rather than guess; a
loose alias (`Product`, `Price`, `Order`…) is taken only when no other
matches. `--map sales.sku="Item Code"` names a column outright.

    field       sales                         lots
    id          Sale ID, Order ID, Invoice…   Lot ID, Batch, PO…      (optional: the row is the id)
    sku         SKU, Item Code, Product…      the same
    date        Date, Sold At, Order Date…    Received, Date, Purchase Date…
    quantity    Qty, Quantity, Units…         the same
    unit_cost   —                             Unit Cost, Cost, Price…

A layout without a required field is an `InputError` naming the file, the
columns found and the ones needed, e.g. `sales.csv: no column for the
quantity (looked for Qty, Quantity, Units, ...); found: Order, Item, When`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

from trueup.errors import InputError, UsageError

ROLES = ("sales", "lots")

_IDS = {
    "sales": ("Sale ID", "Sale", "Order ID", "Order", "Order Number", "Order No", "Invoice", "Invoice Number", "ID"),
    "lots": (
        "Lot ID",
        "Lot",
        "Lot Number",
        "Batch",
        "Batch ID",
        "Batch Number",
        "Purchase ID",
        "PO",
        "PO Number",
        "ID",
    ),
}
_SKUS = ("SKU", "Item Code", "Item", "Item ID", "Product Code", "Product", "Product ID", "Part Number", "Article")
_DATES = {
    "sales": ("Date", "Sold At", "Sale Date", "Date Sold", "Order Date", "Timestamp", "Created At"),
    "lots": ("Received", "Date", "Received At", "Received Date", "Date Received", "Receipt Date", "Purchase Date"),
}
_QUANTITIES = {
    "sales": ("Qty", "Quantity", "Units", "Qty Sold", "Quantity Sold", "Units Sold"),
    "lots": ("Qty", "Quantity", "Units", "Qty Received", "Quantity Received", "Units Received"),
}
_COSTS = ("Unit Cost", "Cost", "Cost Per Unit", "Unit Price", "Purchase Price", "Cost Price", "Price")

FIELDS: dict[str, dict[str, tuple[str, ...]]] = {
    "sales": {"id": _IDS["sales"], "sku": _SKUS, "date": _DATES["sales"], "quantity": _QUANTITIES["sales"]},
    "lots": {
        "id": _IDS["lots"],
        "sku": _SKUS,
        "date": _DATES["lots"],
        "quantity": _QUANTITIES["lots"],
        "unit_cost": _COSTS,
    },
}
OPTIONAL = frozenset({"id"})
_LISTED = 20  # headers named in a message
# Aliases that often name something else (a product's name, a sale price, a creation time, another
# document's number): taken only when no other alias matches, and never a reason to refuse as ambiguous.
_WEAK = ("Item", "Product", "Article", "Price", "Unit Price", "Timestamp", "Created At")
_WEAK += ("ID", "Sale", "Order", "Invoice", "Invoice Number", "Lot", "Batch", "PO", "PO Number", "Purchase ID")


class ColumnMap(NamedTuple):
    """For one input: field -> the column that holds it (absent optional fields are left out)."""

    columns: Mapping[str, str]

    def get(self, field: str) -> str | None:
        return self.columns.get(field)


def squash(header: str) -> str:
    """`' Item-Code '` -> `'itemcode'`: the form headers and aliases are compared in."""
    return re.sub(r"[^0-9a-z]", "", header.casefold())


def resolve(
    role: str, name: str, headers: Sequence[str], overrides: Mapping[str, str], duplicates: Sequence[str] = ()
) -> ColumnMap:
    """Match `headers` (of input `name`) to the fields of `role`, honouring `--map` overrides.

    A field two columns could hold (`Qty` and `Quantity`; a header written twice, listed in
    `duplicates`) is an InputError naming both: picking one would silently drop the other."""
    by_squash: dict[str, str] = {}
    for header in headers:
        by_squash.setdefault(squash(header), header)
    columns: dict[str, str] = {}
    missing = []
    for field, aliases in FIELDS[role].items():
        if field in overrides:
            wanted = overrides[field]
            column = wanted if wanted in headers else by_squash.get(squash(wanted))
            if column is None:
                raise InputError(
                    f"{name}: --map {role}.{field}={wanted!r}, but there is no such column; found: {_list(headers)}"
                )
        else:
            weak = {squash(a) for a in _WEAK}
            found = [squash(a) for a in aliases if squash(a) in by_squash]
            strong = list(dict.fromkeys(by_squash[a] for a in found if a not in weak))
            candidates = strong or [by_squash[a] for a in found]
            if len(strong) > 1:
                both = " and ".join(repr(c) for c in strong)
                raise InputError(
                    f"{name}: columns {both} could each be the {field}; "
                    f"name the right one with --map {role}.{field}=COLUMN (or remove the other)"
                )
            column = candidates[0] if candidates else None
        if column in duplicates:
            raise InputError(f"{name}: two columns are named {column!r} (the {field}); rename or remove one")
        if column is not None:
            columns[field] = column
        elif field not in OPTIONAL:
            missing.append(field)
    if missing:
        needed = "; ".join(f"{field} (e.g. {', '.join(FIELDS[role][field][:4])})" for field in missing)
        fields = " ".join(f"--map {role}.{field}=COLUMN" for field in missing)
        raise InputError(f"{name}: no column for {needed}; found: {_list(headers)}. Name them with {fields}")
    return ColumnMap(columns)


def parse_overrides(texts: Iterable[str]) -> dict[str, dict[str, str]]:
    """`['sales.sku=Item Code']` -> `{'sales': {'sku': 'Item Code'}}`; a malformed one is a UsageError."""
    overrides: dict[str, dict[str, str]] = {role: {} for role in ROLES}
    for text in texts:
        target, sep, column = text.partition("=")
        role, dot, field = target.strip().partition(".")
        if not sep or not dot or not column.strip():
            raise UsageError(f'--map {text!r}: expected ROLE.FIELD=COLUMN, e.g. sales.sku="Item Code"')
        if role not in FIELDS:
            raise UsageError(f"--map {text!r}: {role!r} is not one of {', '.join(ROLES)}")
        if field not in FIELDS[role]:
            raise UsageError(f"--map {text!r}: {role} has no field {field!r} (fields: {', '.join(FIELDS[role])})")
        overrides[role][field] = column.strip().strip('"').strip("'")
    return overrides


def _list(headers: Sequence[str]) -> str:
    """The headers for a message: unprintable characters escaped, long names and long lists shortened."""
    shown = [_printable(h) for h in headers[:_LISTED]] + (["..."] if len(headers) > _LISTED else [])
    return ", ".join(shown) if headers else "(no columns)"


def _printable(header: str) -> str:
    text = "".join(c if c.isprintable() and c != "\ufffd" else ascii(c)[1:-1] for c in header)
    return text if len(text) <= 40 else text[:39] + "…"
