"""ERPNext (frappe/erpnext, v15): `tabBin` figures against the documents that derive them.

ERPNext keeps one `tabBin` row per item and warehouse with running figures that its
controllers update as documents are submitted and cancelled; `erpnext/stock/stock_balance.py`
(`repost_stock`) recomputes each of them from the documents, and those queries are the
derivations below. Default database: MariaDB (PostgreSQL is supported too).
"""

from __future__ import annotations

from typing import Any

from trueup.presets.model import Preset, PresetCheck, PresetRule, difference, source

_BIN_KEY = ["item_code", "warehouse"]
_BALANCE = "erpnext/stock/stock_balance.py"
_MR = "{tabMaterial Request Item} mr_item JOIN {tabMaterial Request} mr ON mr.name = mr_item.parent"
_MR_OPEN = "mr_item.stock_qty > mr_item.ordered_qty AND mr.status != 'Stopped' AND mr.docstatus = 1"
_INWARD = (
    f"mr.material_request_type IN ('Purchase', 'Manufacture', 'Customer Provided', 'Material Transfer') AND {_MR_OPEN}"
)
_OUTWARD = f"mr.material_request_type = 'Material Issue' AND {_MR_OPEN}"
_MR_KEY = ["mr_item.item_code", "mr_item.warehouse"]
_WORK_ORDER_OPEN = "docstatus = 1 AND status NOT IN ('Stopped', 'Completed', 'Closed') AND qty > produced_qty"
_SRE_OPEN = "docstatus = 1 AND status NOT IN ('Delivered', 'Cancelled')"


def _bin(figure: str) -> dict[str, Any]:
    return {"table": "tabBin", "key": _BIN_KEY, "quantity": figure}


PRESET = Preset(
    name="erpnext",
    application="ERPNext",
    databases=("mysql", "postgresql"),
    rules=(
        PresetRule(
            name="bin_actual_qty",
            guards="`tabBin.actual_qty` = the sum of non-cancelled `tabStock Ledger Entry.actual_qty` "
            "per item and warehouse",
            read_from=(
                f"{_BALANCE} (get_balance_qty_from_sle: is_cancelled = 0)",
                "erpnext/stock/doctype/stock_ledger_entry/stock_ledger_entry.json",
                "erpnext/stock/doctype/bin/bin.py (update_qty)",
            ),
            tables=("tabBin", "tabStock Ledger Entry"),
            recorded=_bin("actual_qty"),
            expected=(source(_BIN_KEY, "actual_qty", table="tabStock Ledger Entry", where="is_cancelled = 0"),),
            notes=(
                "A cancelled document marks its ledger entries (and their reversals) is_cancelled = 1;",
                "a Bin left unchanged by a failed cancellation drifts here (erpnext#54528, #55387).",
            ),
        ),
        PresetRule(
            name="bin_planned_qty",
            guards="`tabBin.planned_qty` = qty - produced_qty of open submitted Work Orders per "
            "production item and finished-goods warehouse",
            read_from=(f"{_BALANCE} (get_planned_qty)",),
            tables=("tabBin", "tabWork Order"),
            recorded=_bin("planned_qty"),
            expected=difference(
                ["production_item", "fg_warehouse"],
                "qty",
                "produced_qty",
                table="tabWork Order",
                where=_WORK_ORDER_OPEN,
            ),
        ),
        PresetRule(
            name="bin_indented_qty",
            guards="`tabBin.indented_qty` = requested minus ordered stock qty of open Material Requests "
            "(inward types add, Material Issue takes away)",
            read_from=(f"{_BALANCE} (get_indented_qty)",),
            tables=("tabBin", "tabMaterial Request", "tabMaterial Request Item"),
            recorded=_bin("indented_qty"),
            expected=(
                *difference(_MR_KEY, "mr_item.stock_qty", "mr_item.ordered_qty", from_=_MR, where=_INWARD),
                *difference(_MR_KEY, "mr_item.ordered_qty", "mr_item.stock_qty", from_=_MR, where=_OUTWARD),
            ),
        ),
        PresetRule(
            name="bin_reserved_stock",
            guards="`tabBin.reserved_stock` = reserved minus delivered qty of submitted, open Stock "
            "Reservation Entries",
            read_from=("erpnext/patches/v15_0/set_reserved_stock_in_bin.py",),
            tables=("tabBin", "tabStock Reservation Entry"),
            recorded=_bin("reserved_stock"),
            expected=difference(
                _BIN_KEY, "reserved_qty", "delivered_qty", table="tabStock Reservation Entry", where=_SRE_OPEN
            ),
        ),
    ),
    checks=(
        PresetCheck(
            name="erpnext_negative_stock",
            guards="no Bin below zero where neither Stock Settings nor the Item allows negative stock",
            read_from=(
                "erpnext/stock/stock_ledger.py (is_negative_stock_allowed)",
                "erpnext/stock/doctype/stock_settings/stock_settings.json (allow_negative_stock)",
            ),
            tables=("tabBin", "tabItem", "tabSingles"),
            sql=(
                "SELECT b.item_code, b.warehouse, b.actual_qty FROM {tabBin} b "
                "JOIN {tabItem} i ON i.name = b.item_code "
                "WHERE b.actual_qty < 0 AND COALESCE(i.allow_negative_stock, 0) = 0 "
                "AND NOT EXISTS (SELECT 1 FROM {tabSingles} s WHERE s.doctype = 'Stock Settings' "
                "AND s.field = 'allow_negative_stock' AND s.value = '1')"
            ),
        ),
    ),
    left_out=(
        "tabBin.reserved_qty: its derivation (get_reserved_qty) depends on a Selling Settings flag read at run",
        "  time and prorates packed items by a division (qty x (ordered - delivered) / ordered): not exact sums.",
        "tabBin.ordered_qty: get_ordered_qty sums (qty - received_qty) x conversion_factor, a product that Bin",
        "  rounds to 9 decimals: the sum of the exact products differs from the stored figure in the last digit.",
        "tabBin.reserved_qty_for_production / _for_sub_contract: derived with CASE on skip_transfer and a",
        "  subtraction clamped at zero (bin.py): not a sum of document quantities.",
        "tabBin.projected_qty: a formula over the other Bin figures whose terms differ between ERPNext versions.",
    ),
)
