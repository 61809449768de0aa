"""The four drift shapes from real incidents, each a schema, a generator and its rules.

Each module defines `metadata` (its tables), `CONFIG` (the `[[rules]]` and
`[[checks]]` TOML that reconciles them) and `generate(connection, items=...,
seed=...)`, which fills the tables with consistent records and then plants
drift of the incident's kind. Table names do not collide, so all four fit in
one database: that is what `trueup demo` builds.

| module      | incident                                   | key                       |
| ----------- | ------------------------------------------ | ------------------------- |
| usage_logs  | consumption logs never deducted            | UUID                      |
| storefront  | storefront overcapacity after a rollback   | (storefront, product) int |
| batches     | batch system vs inventory table            | product code (string)     |
| pieces      | pieces counted instead of summed           | integer, filtered rows    |
"""

from __future__ import annotations

from types import ModuleType

from trueup.examples import batches, pieces, storefront, usage_logs

SHAPES: dict[str, ModuleType] = {
    "usage_logs": usage_logs,
    "storefront": storefront,
    "batches": batches,
    "pieces": pieces,
}
