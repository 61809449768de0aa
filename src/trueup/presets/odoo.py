"""Odoo (odoo/odoo, 17 and later): `stock_quant` against the move lines that explain it.

Odoo keeps one `stock_quant` row per product, location, lot, package and owner in every
internal or transit location; validating a move line takes its `quantity_product_uom` from
the quant at (location_id, lot_id, package_id, owner_id) and adds it to the one at
(location_dest_id, lot_id, result_package_id, owner_id), and while the line is open the same
quantity is reserved on the source quant (`_synchronize_quant` in stock_move_line.py). Lot,
package and owner are usually NULL, so each move line is matched to its quant with
`IS NOT DISTINCT FROM` and the rules are keyed by the quant's id. Odoo 17 renamed the move
line's `qty_done`/`reserved_qty` to `quantity`/`quantity_product_uom`: these rules need 17+.
PostgreSQL only.
"""

from __future__ import annotations

from typing import Any

from trueup.presets.model import Preset, PresetCheck, PresetRule, source

_STOCKED = "(SELECT id FROM stock_location WHERE usage IN ('internal', 'transit'))"
_NULLABLE_MATCH = "q.lot_id IS NOT DISTINCT FROM ml.lot_id AND q.owner_id IS NOT DISTINCT FROM ml.owner_id"
_INTO = (
    "stock_move_line ml JOIN stock_quant q ON q.product_id = ml.product_id "
    f"AND q.location_id = ml.location_dest_id AND q.package_id IS NOT DISTINCT FROM ml.result_package_id "
    f"AND {_NULLABLE_MATCH}"
)
_OUT_OF = (
    "stock_move_line ml JOIN stock_quant q ON q.product_id = ml.product_id "
    f"AND q.location_id = ml.location_id AND q.package_id IS NOT DISTINCT FROM ml.package_id AND {_NULLABLE_MATCH}"
)
_SOURCES = (
    "addons/stock/models/stock_quant.py",
    "addons/stock/models/stock_move_line.py (_action_done, write: _synchronize_quant)",
)
_GAP = (
    "Odoo deletes quants that reach zero (_unlink_zero_quants); stock moved into a location whose quant",
    "was deleted while not empty has no row to compare with and is not seen by this rule.",
)


def _quant(figure: str) -> dict[str, Any]:
    return {"table": "stock_quant", "key": ["id"], "quantity": figure, "where": f"location_id IN {_STOCKED}"}


def _lines(joined: str, state: str, sign: int = 1) -> dict[str, Any]:
    """The move lines in `state` joined to their quant, summed per quant."""
    return source(
        ["q.id"], "ml.quantity_product_uom", sign=sign, where=f"{state} AND q.location_id IN {_STOCKED}", from_=joined
    )


PRESET = Preset(
    name="odoo",
    application="Odoo",
    databases=("postgresql",),
    rules=(
        PresetRule(
            name="quant_quantity",
            guards="`stock_quant.quantity` = done move lines into the quant minus those out of it "
            "(product, location, lot, package, owner; internal and transit locations)",
            read_from=_SOURCES,
            tables=("stock_quant", "stock_move_line", "stock_location"),
            recorded=_quant("quantity"),
            expected=(_lines(_INTO, "ml.state = 'done'"), _lines(_OUT_OF, "ml.state = 'done'", sign=-1)),
            notes=_GAP,
        ),
        PresetRule(
            name="quant_reserved",
            guards="`stock_quant.reserved_quantity` = the quantities of open (not done, not cancelled) "
            "move lines taking from the quant",
            read_from=_SOURCES,
            tables=("stock_quant", "stock_move_line", "stock_location"),
            recorded=_quant("reserved_quantity"),
            expected=(_lines(_OUT_OF, "(ml.state IS NULL OR ml.state NOT IN ('done', 'cancel'))"),),
            notes=(
                "Odoo's own invariant: 'the sum of the move lines reserved quantity should always be equal",
                "to the sum of reserved_quantity on the quants' (stock_move_line.py, write).",
            ),
        ),
    ),
    checks=(
        PresetCheck(
            name="odoo_duplicate_quants",
            guards="one quant per product, location, lot, package and owner (duplicates split the figures)",
            read_from=("addons/stock/models/stock_quant.py (_merge_quants)",),
            tables=("stock_quant",),
            severity="warning",
            sql=(
                "SELECT product_id, location_id, lot_id, package_id, owner_id, COUNT(*) AS quants "
                "FROM stock_quant GROUP BY product_id, location_id, lot_id, package_id, owner_id "
                "HAVING COUNT(*) > 1"
            ),
        ),
    ),
)
