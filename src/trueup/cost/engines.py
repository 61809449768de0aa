"""Costing engines: `Books` in, an `Allocation` out, one method per entry in `ENGINES`.

Every engine sees the same `Books` (each SKU's sales and purchase lots as
integers in shared units, sorted by SKU, time and input row) and returns the
same `Allocation`, so findings and outputs never depend on the method:

* `pieces`: which units of which lot each sale consumed (a return gives them
  back: negative quantity and value), their exact value, and whether the lot
  arrived only after the sale (`late`);
* `sales`: per sale line, units costed, units `short` (beyond every lot the
  SKU ever had) and returned units `unmatched` (more than had been sold);
* `remaining`: what is left of each lot and its value.

The rules all methods share (documented for users in README.md):

* a sale may use lots received at or before its time; lots received at the
  same time as a sale come first;
* a sale that finds too little stock is a `date_mismatch` if later lots can
  cover it, a `negative_inventory` for what no lot ever covers; when the user's
  policy lets such a SKU through, the sale is back-ordered: filled from the
  next lots to arrive, in sale order, and whatever no lot covers is left
  uncosted;
* a return (negative quantity) puts back the units sold most recently before
  it, at the cost they left with (a negative COGS); those units are the next
  to go again under FIFO. Units returned beyond what had been sold are
  `unmatched` and have no cost: FIFO counts them as stock that the next sales
  take first, uncosted; LIFO and moving average leave them out of stock.

FIFO is columnar (`trueup.cost.fifo`): 2,000,000 rows cost in about a second.
LIFO and moving average run the sequential helper in `trueup.cost.booking`,
parameterised by lot order the way Beancount's booking methods are.
"""

from __future__ import annotations

from collections.abc import Callable

from trueup.cost import booking, fifo
from trueup.cost.books import Allocation, Books

METHODS = ("fifo", "lifo", "average")

ENGINES: dict[str, Callable[[Books], Allocation]] = {
    "fifo": fifo.allocate,
    "lifo": lambda books: booking.allocate(books, booking.NEWEST_FIRST),
    "average": lambda books: booking.allocate(books, booking.POOLED),
}


def allocate(books: Books, method: str) -> Allocation:
    return ENGINES[method](books)
