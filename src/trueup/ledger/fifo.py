"""Which lots a quantity comes from: FIFO, named lots, and bundling pieces. Pure functions.

Stock at a location is a list of `LotStock`, oldest first (received time,
then the order lots were made). Taking a quantity walks it in that order:

    stock   L1: 4 @ 2.00   L2: 10 @ 2.50   L3: 5 @ 3.00
    take 7  -> picks L1 4 @ 2.00, L2 3 @ 2.50     cost 4×2.00 + 3×2.50 = 15.50
            shortfall 0

Asking for more than there is returns the picks of everything plus the
shortfall; the caller decides whether that is an error (it is, unless the
location allows negative stock). Named lots restrict the walk to those lots in
the order given (`["L3", "L1"]`), or say exactly how much from each
(`{"L3": 2, "L1": 1}`).

`bundle()` combines pieces into `count` bundles of `size` and one remainder,
filling each bundle from the pieces in order:

    pieces P1: 4, P2: 7, P3: 3   bundle(size=5, count=2)
    -> bundle 1: P1 4, P2 1      bundle 2: P2 5      remainder: P2 1, P3 3
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple


class LotStock(NamedTuple):
    lot: str
    quantity: Decimal
    unit_cost: Decimal
    received_at: datetime


class Pick(NamedTuple):
    lot: str
    quantity: Decimal
    unit_cost: Decimal


def fifo(stock: Sequence[LotStock], quantity: Decimal) -> tuple[list[Pick], Decimal]:
    """Picks of `quantity` from the oldest lots with stock, and the shortfall (0 when covered)."""
    picks: list[Pick] = []
    left = quantity
    for lot in stock:
        if left <= 0:
            break
        if lot.quantity <= 0:
            continue
        taken = min(lot.quantity, left)
        picks.append(Pick(lot.lot, taken, lot.unit_cost))
        left -= taken
    return picks, left


def from_named(
    stock: Sequence[LotStock], quantity: Decimal, named: Sequence[str] | Mapping[str, Decimal]
) -> tuple[list[Pick], Decimal, list[str]]:
    """Picks from the named lots only, the shortfall, and the names with no stock row at all."""
    by_lot = {lot.lot: lot for lot in stock}
    unknown = [name for name in named if name not in by_lot]
    if isinstance(named, Mapping):
        picks = [Pick(name, Decimal(q), by_lot[name].unit_cost) for name, q in named.items() if name in by_lot]
        short = sum((max(Decimal(0), p.quantity - by_lot[p.lot].quantity) for p in picks), Decimal(0))
        return picks, short, unknown
    picks, short = fifo([by_lot[name] for name in named if name in by_lot], quantity)
    return picks, short, unknown


def bundle(pieces: Sequence[Pick], size: Decimal, count: int) -> list[list[Pick]]:
    """`count` bundles of `size` filled from `pieces` in order, then the remainder (if any) last.

    The caller checks that the pieces hold at least size × count.
    """
    outputs: list[list[Pick]] = [[] for _ in range(count)]
    remainder: list[Pick] = []
    target, room = 0, size
    for piece in pieces:
        left = piece.quantity
        while left > 0:
            if target == count:
                remainder.append(Pick(piece.lot, left, piece.unit_cost))
                break
            taken = min(left, room)
            outputs[target].append(Pick(piece.lot, taken, piece.unit_cost))
            left -= taken
            room -= taken
            if room == 0:
                target, room = target + 1, size
    return [*outputs, remainder] if remainder else outputs
