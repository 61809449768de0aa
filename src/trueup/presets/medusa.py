"""Medusa (medusajs/medusa, v2 inventory module): reserved quantity against live reservations.

`inventory_level` caches `reserved_quantity` per inventory item and stock location; each live
`reservation_item` (soft-deleted ones have `deleted_at` set) reserves `quantity` of one item at
one location. Medusa stores every big number twice, as `numeric` and as a `raw_…` JSON copy;
trueup repairs the numeric column, and the check below shows levels whose raw copy disagrees
with it. PostgreSQL only.
"""

from __future__ import annotations

from trueup.presets.model import Preset, PresetCheck, PresetRule

_LIVE = "deleted_at IS NULL"

PRESET = Preset(
    name="medusa",
    application="Medusa",
    databases=("postgresql",),
    rules=(
        PresetRule(
            name="inventory_level_reserved",
            guards="`inventory_level.reserved_quantity` = the sum of live `reservation_item.quantity` per "
            "inventory item and location",
            read_from=(
                "packages/modules/inventory/src/models/inventory-level.ts",
                "packages/modules/inventory/src/models/reservation-item.ts",
                "packages/modules/inventory/src/migrations/Migration20240307132720.ts",
            ),
            tables=("inventory_level", "reservation_item"),
            recorded={
                "table": "inventory_level",
                "key": ["inventory_item_id", "location_id"],
                "quantity": "reserved_quantity",
                "where": _LIVE,
            },
            expected=(
                {
                    "table": "reservation_item",
                    "key": ["inventory_item_id", "location_id"],
                    "quantity": "quantity",
                    "where": _LIVE,
                },
            ),
            notes=("Reservations deleted or moved without adjusting the level drift here (medusa#12401, #16406).",),
        ),
    ),
    checks=(
        PresetCheck(
            name="medusa_raw_reserved_quantity",
            guards="`inventory_level.raw_reserved_quantity` (Medusa's JSON copy) holds the same value as "
            "`reserved_quantity`",
            read_from=("packages/modules/inventory/src/models/inventory-level.ts (model.bigNumber)",),
            tables=("inventory_level",),
            severity="warning",
            sql=(
                "SELECT id, inventory_item_id, location_id, reserved_quantity, raw_reserved_quantity "
                "FROM inventory_level WHERE deleted_at IS NULL AND raw_reserved_quantity IS NOT NULL "
                "AND (raw_reserved_quantity ->> 'value')::numeric <> reserved_quantity"
            ),
            notes=(
                "After `trueup apply` repairs reserved_quantity this lists the levels whose raw copy still",
                "holds the old figure: set it with UPDATE inventory_level SET raw_reserved_quantity =",
                "jsonb_build_object('value', reserved_quantity::text, 'precision', 20) WHERE ...",
            ),
        ),
    ),
)
