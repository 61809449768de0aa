"""The ledger over HTTP: every `trueup.ledger.Ledger` call, with the idempotency key in `Idempotency-Key`.

Postings need `sync`; queries `read`. A retry with the same key and body
returns the original transaction (nothing is posted twice); the same key with
a different body is 409 `idempotency_conflict`, as is not enough stock
(`insufficient_stock`). Quantities and money are decimal strings or numbers,
answered exactly.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response

from trueup.ledger import Ledger
from trueup.report import ledger as render
from trueup.serve.api import Body, Reader, RowId, Syncer, json_response
from trueup.serve.auth import service_of
from trueup.serve.errors import ERROR_RESPONSES

router = APIRouter(prefix="/api/ledger", tags=["ledger"], responses=ERROR_RESPONSES)  # type: ignore[arg-type]

IdempotencyKey = Annotated[
    str | None, Header(alias="Idempotency-Key", max_length=200, description="A retry with it returns the original.")
]
Quantity = Decimal | str  # the ledger parses and validates, naming the field
Lots = list[str] | dict[str, Quantity] | None


class Receive(Body):
    item: str
    location: str
    qty: Quantity
    unit_cost: Quantity
    lot: str | None = None
    at: datetime | None = None


class Transfer(Body):
    item: str
    from_location: str
    to_location: str
    qty: Quantity
    lots: Lots = None
    at: datetime | None = None


class Issue(Body):
    item: str
    location: str
    qty: Quantity
    reason: str = "sale"
    lots: Lots = None
    at: datetime | None = None


class Adjust(Body):
    item: str
    location: str
    counted: Quantity
    unit_cost: Quantity | None = None
    at: datetime | None = None


class Split(Body):
    lot: str
    pieces: list[Quantity]
    location: str | None = None
    item: str | None = None
    at: datetime | None = None


class Merge(Body):
    lots: list[str]
    bundle_size: Quantity
    bundles: int
    location: str | None = None
    item: str | None = None
    at: datetime | None = None


class Revert(Body):
    force: bool = False
    at: datetime | None = None


class Reserve(Body):
    item: str
    location: str
    qty: Quantity
    hold_for: str
    expires_at: datetime | None = None


class Commit(Body):
    reason: str = "sale"
    at: datetime | None = None


def ledger(request: Request) -> Ledger:
    return service_of(request).ledger()


def posted(transaction: Any) -> Response:
    return json_response(render.transaction_dict(transaction))


@router.post("/receive", summary="Stock arrives from the supplier into a new lot")
def receive(request: Request, body: Receive, token: Syncer, key: IdempotencyKey = None) -> Response:
    return posted(ledger(request).receive(**body.model_dump(), key=key))


@router.post("/transfer", summary="Move stock between locations, oldest lots first")
def transfer(request: Request, body: Transfer, token: Syncer, key: IdempotencyKey = None) -> Response:
    return posted(ledger(request).transfer(**body.model_dump(), key=key))


@router.post("/issue", summary="Stock leaves (sale, usage, scrap), oldest lots first; with the cost of the goods")
def issue(request: Request, body: Issue, token: Syncer, key: IdempotencyKey = None) -> Response:
    return posted(ledger(request).issue(**body.model_dump(), key=key))


@router.post("/adjust", summary="A stocktake: post the difference from on hand")
def adjust(request: Request, body: Adjust, token: Syncer, key: IdempotencyKey = None) -> Response:
    return posted(ledger(request).adjust(**body.model_dump(), key=key))


@router.post("/split", summary="Cut pieces off a lot; each piece becomes a new lot")
def split(request: Request, body: Split, token: Syncer, key: IdempotencyKey = None) -> Response:
    return posted(ledger(request).split(**body.model_dump(), key=key).transaction)


@router.post("/merge", summary="Combine lots into bundles of a size, plus one remainder lot")
def merge(request: Request, body: Merge, token: Syncer, key: IdempotencyKey = None) -> Response:
    return posted(ledger(request).merge(**body.model_dump(), key=key).transaction)


@router.post("/transactions/{transaction_id}/revert", summary="Post the compensating transaction")
def revert(
    request: Request,
    token: Syncer,
    transaction_id: RowId,
    body: Revert | None = None,
    key: IdempotencyKey = None,
) -> Response:
    return posted(ledger(request).revert(transaction_id, **(body or Revert()).model_dump(), key=key))


@router.get("/transactions/{transaction_id}", summary="One transaction and its movements")
def transaction(request: Request, token: Reader, transaction_id: RowId) -> Response:
    return posted(ledger(request).transaction(transaction_id))


@router.post("/reservations", summary="Hold stock for someone; available = on hand − held")
def reserve(request: Request, body: Reserve, token: Syncer) -> Response:
    return json_response(render.reservation_dict(ledger(request).reserve(**body.model_dump())))


@router.get("/reservations/{reservation_id}", summary="One reservation")
def reservation(request: Request, token: Reader, reservation_id: RowId) -> Response:
    return json_response(render.reservation_dict(ledger(request).reservation(reservation_id)))


@router.post("/reservations/{reservation_id}/release", summary="End a hold without moving stock")
def release(request: Request, token: Syncer, reservation_id: RowId) -> Response:
    books = ledger(request)
    books.release(reservation_id)
    return json_response(render.reservation_dict(books.reservation(reservation_id)))


@router.post("/reservations/{reservation_id}/commit", summary="Issue what a reservation holds and close it")
def commit(
    request: Request,
    token: Syncer,
    reservation_id: RowId,
    body: Commit | None = None,
    key: IdempotencyKey = None,
) -> Response:
    return posted(ledger(request).commit(reservation_id, **(body or Commit()).model_dump(), key=key))


@router.get("/balance", summary="Quantity on hand, now or as of a past time")
def balance(
    request: Request,
    token: Reader,
    item: str,
    location: str | None = None,
    lot: str | None = None,
    as_of: datetime | None = None,
) -> Response:
    figure = ledger(request).balance(item, location, lot=lot, as_of=as_of)
    return json_response({"item": item, "location": location, "lot": lot, "as_of": as_of, "balance": figure})


@router.get("/available", summary="On hand minus what open reservations hold")
def available(request: Request, token: Reader, item: str, location: str) -> Response:
    figure = ledger(request).available(item, location)
    return json_response({"item": item, "location": location, "available": figure})


@router.get("/positions", summary="Each real location holding an item: on hand, reserved, available")
def positions(request: Request, token: Reader, item: str) -> Response:
    rows = ledger(request).positions(item)
    return json_response(
        [
            {"location": w, "on_hand": on_hand, "reserved": on_hand - free, "available": free}
            for w, on_hand, free in rows
        ]
    )


@router.get("/lots/{lot}/history", summary="Every movement of a lot, oldest first")
def history(request: Request, token: Reader, lot: str, item: Annotated[str | None, Query()] = None) -> Response:
    return json_response([e._asdict() for e in ledger(request).history(lot, item=item)])


@router.get("/valuation", summary="Stock on hand valued: remaining quantity × unit cost, per lot")
def valuation(request: Request, token: Reader, item: str | None = None) -> Response:
    return json_response([v._asdict() for v in ledger(request).valuation(item)])
