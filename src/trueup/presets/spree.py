"""Spree (spree/spree): a stock item's count on hand against its stock movements.

Every `Spree::StockMovement` adjusts its stock item's `count_on_hand` by its `quantity` when
created (`update_stock_item_quantity`), but only when the variant tracks inventory; stock
items are soft-deleted (`acts_as_paranoid`: `deleted_at`). Runs on PostgreSQL, MySQL/MariaDB
and SQLite.
"""

from __future__ import annotations

from trueup.presets.model import Preset, PresetCheck, PresetRule

_TRACKED = "variant_id IN (SELECT id FROM spree_variants WHERE track_inventory = TRUE)"
_LIVE_ITEMS = f"deleted_at IS NULL AND {_TRACKED}"

PRESET = Preset(
    name="spree",
    application="Spree",
    databases=("postgresql", "mysql", "sqlite"),
    rules=(
        PresetRule(
            name="stock_item_count_on_hand",
            guards="`spree_stock_items.count_on_hand` = the sum of `spree_stock_movements.quantity` per stock "
            "item (deleted stock items and untracked variants excluded)",
            read_from=(
                "core/app/models/spree/stock_movement.rb (update_stock_item_quantity)",
                "core/app/models/spree/stock_item.rb (adjust_count_on_hand, acts_as_paranoid)",
            ),
            tables=("spree_stock_items", "spree_stock_movements", "spree_variants"),
            recorded={"table": "spree_stock_items", "key": ["id"], "quantity": "count_on_hand", "where": _LIVE_ITEMS},
            expected=(
                {
                    "table": "spree_stock_movements",
                    "key": ["stock_item_id"],
                    "quantity": "quantity",
                    "where": f"stock_item_id IN (SELECT id FROM spree_stock_items WHERE {_LIVE_ITEMS})",
                },
            ),
            notes=(
                "StockItem#set_count_on_hand and #reduce_count_on_hand_to_zero write the figure without a",
                "movement: code that calls them directly shows up here as drift. With",
                "Spree::Config.track_inventory_levels = false no movement adjusts stock: skip this rule.",
            ),
        ),
    ),
    checks=(
        PresetCheck(
            name="spree_negative_count_on_hand",
            guards="no negative count on hand on a stock item that is not backorderable",
            read_from=("core/app/models/spree/stock_item.rb (verify_count_on_hand?)",),
            tables=("spree_stock_items",),
            sql=(
                "SELECT id, stock_location_id, variant_id, count_on_hand FROM spree_stock_items "
                "WHERE deleted_at IS NULL AND count_on_hand < 0 AND backorderable = FALSE"
            ),
        ),
    ),
)
