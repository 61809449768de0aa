"""Sequential booking: walk each SKU's receipts and sales in time order, one helper for every lot order.

Like Beancount's booking methods (`booking_method.py`, where FIFO and LIFO
share one helper that only sorts the matching lots differently), one walk
serves all methods; the `order` decides which lot a sale takes next:

* `OLDEST_FIRST` (FIFO) and `NEWEST_FIRST` (LIFO): lots wait in a heap keyed
  by arrival; a sale takes from the top until it is filled.
* `POOLED` (moving average): the SKU's stock is one pool of quantity Q and
  exact value V. A sale of q takes value round(V × q / Q) — rounded half-even
  at the value's last digit — and V keeps the remainder, so the last sale that
  empties the pool takes exactly what is left: Σ COGS + ending value = Σ
  purchases, to the unit of the last digit.

Worked example (LIFO, SKU ABC): L1 = 10 @ 2.50 (Jan 2), L2 = 10 @ 3.00
(Jan 3); S1 = 4 on Jan 4 takes 4 of L2 (12.00); S2 = 8 on Jan 5 takes L2's
other 6 and 2 of L1 (18.00 + 5.00 = 23.00). Moving average instead: after
both lots Q = 20, V = 55.00; S1 takes 55.00 × 4/20 = 11.00 (V = 44.00, Q = 16);
S2 takes 44.00 × 8/16 = 22.00.

Shared rules (see `trueup.cost.engines`): lots arriving at a sale's time come
first; a sale that finds too little stock waits for the next lots (back-order,
flagged `late`); a return gives back the most recent consumptions first.
FIFO normally runs columnar (`trueup.cost.fifo`); `OLDEST_FIRST` here is the
same method walked one event at a time, which the tests hold the two to.
"""

from __future__ import annotations

import heapq
from collections import deque
from typing import Any

import numpy as np
import polars as pl

from trueup.cost.books import PIECES, REMAINING, SALES, Allocation, Books

OLDEST_FIRST = "oldest_first"
NEWEST_FIRST = "newest_first"
POOLED = "pooled"


def allocate(books: Books, order: str) -> Allocation:
    sales, lots = books.sales, books.lots
    sale_columns = _columns(sales, ("sale", "code", "at", "quantity"))
    lot_columns = _columns(lots, ("lot", "code", "at", "quantity", "unit_cost"))
    out = _Ledger(sale_columns["sale"])
    sale_bounds = _bounds(sale_columns["code"], books.skus)
    lot_bounds = _bounds(lot_columns["code"], books.skus)
    for code in range(books.skus):
        walk = _Walk(code, order, sale_columns, lot_columns, out)
        walk.run(range(*sale_bounds[code]), range(*lot_bounds[code]))
    return out.allocation()


def _columns(frame: pl.DataFrame, names: tuple[str, ...]) -> dict[str, list[Any]]:
    return {name: (frame[name].dt.epoch("us") if name == "at" else frame[name]).to_list() for name in names}


def _bounds(codes: list[int], skus: int) -> list[tuple[int, int]]:
    array = np.asarray(codes, dtype=np.int64)
    starts = np.searchsorted(array, np.arange(skus), side="left")
    stops = np.searchsorted(array, np.arange(skus), side="right")
    return list(zip(starts.tolist(), stops.tolist(), strict=True))


class _Ledger:
    """The walk's output, gathered as plain lists and turned into frames once at the end."""

    def __init__(self, sales: list[int]):
        self.sales = sales
        self.pieces: dict[str, list[Any]] = {name: [] for name in PIECES}
        self.covered = [0] * len(sales)
        self.short = [0] * len(sales)
        self.unmatched = [0] * len(sales)
        self.remaining: dict[str, list[Any]] = {name: [] for name in REMAINING}

    def piece(self, sale: int, lot: int | None, quantity: int, value: int, late: bool) -> None:
        for name, item in zip(PIECES, (sale, lot, quantity, value, late), strict=True):
            self.pieces[name].append(item)

    def allocation(self) -> Allocation:
        return Allocation(
            pl.DataFrame(self.pieces, schema=PIECES),
            pl.DataFrame(
                {"sale": self.sales, "covered": self.covered, "short": self.short, "unmatched": self.unmatched},
                schema=SALES,
            ),
            pl.DataFrame(self.remaining, schema=REMAINING),
        )


class _Walk:
    """One SKU's receipts and sales, in time order, under one lot order."""

    def __init__(self, code: int, order: str, sales: dict[str, list[Any]], lots: dict[str, list[Any]], out: _Ledger):
        self.code, self.order, self.sales, self.lots, self.out = code, order, sales, lots, out
        self.left: dict[int, int] = {}  # lot index -> units left
        self.heap: list[tuple[int, int]] = []  # (priority, lot index) of lots that may have units left
        self.queued: set[int] = set()
        self.pool_quantity = 0
        self.pool_value = 0
        self.log: list[list[Any]] = []  # consumptions, newest last: [line, lot index | None, quantity, value]
        self.waiting: deque[list[int]] = deque()  # back-orders: [line, units still to fill]

    def run(self, sales: range, lots: range) -> None:
        lot_iter = iter(lots)
        next_lot = next(lot_iter, None)
        for line in sales:
            while next_lot is not None and self.lots["at"][next_lot] <= self.sales["at"][line]:
                self.receive(next_lot)
                next_lot = next(lot_iter, None)
            quantity = self.sales["quantity"][line]
            if quantity > 0:
                self.sell(line, quantity)
            elif quantity < 0:
                self.take_back(line, -quantity)
        while next_lot is not None:
            self.receive(next_lot)
            next_lot = next(lot_iter, None)
        for line, units in self.waiting:
            self.out.short[line] += units
        self.close()

    def receive(self, lot: int) -> None:
        units, cost = self.lots["quantity"][lot], self.lots["unit_cost"][lot]
        while units and self.waiting:
            wanted = self.waiting[0]
            take = min(units, wanted[1])
            self.consume(wanted[0], lot, take, take * cost, late=True)
            units -= take
            wanted[1] -= take
            if not wanted[1]:
                self.waiting.popleft()
        if not units:
            return
        if self.order == POOLED:
            self.pool_quantity += units
            self.pool_value += units * cost
        else:
            self.left[lot] = units
            self.queue(lot)

    def sell(self, line: int, need: int) -> None:
        if self.order == POOLED:
            take = min(need, self.pool_quantity)
            if take:
                value = _share(self.pool_value, take, self.pool_quantity)
                self.pool_quantity -= take
                self.pool_value -= value
                self.consume(line, None, take, value, late=False)
                need -= take
        while need and self.heap:
            lot = self.heap[0][1]
            if not self.left[lot]:
                heapq.heappop(self.heap)
                self.queued.discard(lot)
                continue
            take = min(need, self.left[lot])
            self.left[lot] -= take
            self.consume(line, lot, take, take * self.lots["unit_cost"][lot], late=False)
            need -= take
        if need:
            self.waiting.append([line, need])

    def take_back(self, line: int, units: int) -> None:
        while units and self.log:
            entry = self.log[-1]
            _, lot, quantity, value = entry
            take = min(units, quantity)
            back = _share(value, take, quantity)
            entry[2], entry[3] = quantity - take, value - back
            if entry[2] == 0:
                self.log.pop()
            if lot is None:
                self.pool_quantity += take
                self.pool_value += back
            else:
                self.left[lot] = self.left.get(lot, 0) + take  # a lot a back-order took whole
                self.queue(lot)
            self.out.piece(self.sales["sale"][line], _lot_id(self.lots, lot), -take, -back, False)
            self.out.covered[line] += take
            units -= take
        self.out.unmatched[line] += units

    def consume(self, line: int, lot: int | None, quantity: int, value: int, *, late: bool) -> None:
        self.log.append([line, lot, quantity, value])
        self.out.piece(self.sales["sale"][line], _lot_id(self.lots, lot), quantity, value, late)
        self.out.covered[line] += quantity

    def queue(self, lot: int) -> None:
        if lot not in self.queued:
            heapq.heappush(self.heap, (lot if self.order == OLDEST_FIRST else -lot, lot))
            self.queued.add(lot)

    def close(self) -> None:
        remaining = self.out.remaining
        if self.order == POOLED:
            if self.pool_quantity:
                for name, item in zip(REMAINING, (self.code, None, self.pool_quantity, self.pool_value), strict=True):
                    remaining[name].append(item)
            return
        for lot, units in sorted(self.left.items()):
            if units:
                value = units * self.lots["unit_cost"][lot]
                for name, item in zip(REMAINING, (self.code, self.lots["lot"][lot], units, value), strict=True):
                    remaining[name].append(item)


def _lot_id(lots: dict[str, list[Any]], lot: int | None) -> int | None:
    return None if lot is None else lots["lot"][lot]


def _share(value: int, part: int, whole: int) -> int:
    """value × part / whole, rounded half-even; exactly `value` when part == whole."""
    if part == whole:
        return value
    quotient, remainder = divmod(value * part, whole)
    twice = 2 * remainder
    if twice > whole or (twice == whole and quotient % 2):
        quotient += 1
    return quotient
