"""Saleor (saleor/saleor): a stock's allocated quantity against the order lines' allocations.

`warehouse_stock` (model `Stock`) caches `quantity_allocated`; each `warehouse_allocation`
(model `Allocation`) holds one order line's allocated quantity from one stock. PostgreSQL only.
"""

from __future__ import annotations

from trueup.presets.model import Preset, PresetRule

PRESET = Preset(
    name="saleor",
    application="Saleor",
    databases=("postgresql",),
    rules=(
        PresetRule(
            name="stock_quantity_allocated",
            guards="`warehouse_stock.quantity_allocated` = the sum of `warehouse_allocation.quantity_allocated` "
            "per stock",
            read_from=("saleor/warehouse/models.py (Stock, Allocation)",),
            tables=("warehouse_stock", "warehouse_allocation"),
            recorded={"table": "warehouse_stock", "key": ["id"], "quantity": "quantity_allocated"},
            expected=({"table": "warehouse_allocation", "key": ["stock_id"], "quantity": "quantity_allocated"},),
            notes=(
                "Allocations left behind by a failed order update, or a counter bumped twice, drift here",
                "(saleor#5334).",
            ),
        ),
    ),
)
