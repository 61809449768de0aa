"""The ledger over HTTP: every `trueup.ledger.Ledger` call, with the idempotency key in `Idempotency-Key`.

Postings need `sync`; queries `read`. A retry with the same key and body
returns the original transaction (nothing is posted twice); the same key with
a different body is 409 `idempotency_conflict`, as is not enough stock
(`insufficient_stock`). Quantities and money are decimal strings or numbers,
answered exactly.

The postings that take only a body (receive, transfer, issue, adjust, split,
merge) are one table, `POSTINGS`: operation, path, body model, `Ledger` call
and scope, registered in a loop; each answers the transaction it posted.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from operator import attrgetter
from typing import Annotated, Any, NamedTuple

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from pydantic import StrictBool, StrictInt

from trueup.ledger import Ledger
from trueup.ledger.records import Transaction
from trueup.report import ledger as render
from trueup.report.ledger import (
    AvailableDocument,
    BalanceDocument,
    LotEventEntry,
    LotValueEntry,
    PositionEntry,
    ReservationEntry,
    TransactionDocument,
)
from trueup.serve.api import Body, Reader, RowId, Syncer, Timestamp, json_response, known_query
from trueup.serve.auth import bearer, service_of
from trueup.serve.errors import BODY, TOKEN, failures
from trueup.serve.tokens import Token

router = APIRouter(prefix="/api/ledger", tags=["ledger"], dependencies=[Depends(known_query)])

POSTED = failures(*TOKEN, *BODY, 404, 409)  # 404: an unknown lot, transaction or reservation; 409: see above
QUERIED = failures(*TOKEN, 404)

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
    at: Timestamp | None = None


class Transfer(Body):
    item: str
    from_location: str
    to_location: str
    qty: Quantity
    lots: Lots = None
    at: Timestamp | None = None


class Issue(Body):
    item: str
    location: str
    qty: Quantity
    reason: str = "sale"
    lots: Lots = None
    at: Timestamp | None = None


class Adjust(Body):
    item: str
    location: str
    counted: Quantity
    unit_cost: Quantity | None = None
    at: Timestamp | None = None


class Split(Body):
    lot: str
    pieces: list[Quantity]
    location: str | None = None
    item: str | None = None
    at: Timestamp | None = None


class Merge(Body):
    lots: list[str]
    bundle_size: Quantity
    bundles: StrictInt
    location: str | None = None
    item: str | None = None
    at: Timestamp | None = None


class Revert(Body):
    force: StrictBool = False
    at: Timestamp | None = None


class Reserve(Body):
    item: str
    location: str
    qty: Quantity
    hold_for: str
    expires_at: Timestamp | None = None


class Commit(Body):
    reason: str = "sale"
    at: Timestamp | None = None


def ledger(request: Request) -> Ledger:
    return service_of(request).ledger()


def posted(transaction: Any) -> Response:
    return json_response(render.transaction_dict(transaction))


class Posting(NamedTuple):
    """One posting endpoint: POST `path` with a `body`, answered with the transaction `call` posts."""

    name: str
    path: str
    summary: str
    body: type[Body]
    call: Callable[..., Any]  # the Ledger method, called with the body's fields and the idempotency key
    scope: str = "sync"
    transaction: Callable[[Any], Transaction] = lambda made: made  # the transaction in what `call` returns


POSTINGS = (
    Posting("receive", "/receive", "Stock arrives from the supplier into a new lot", Receive, Ledger.receive),
    Posting("transfer", "/transfer", "Move stock between locations, oldest lots first", Transfer, Ledger.transfer),
    Posting(
        "issue",
        "/issue",
        "Stock leaves (sale, usage, scrap), oldest lots first; with the cost of the goods",
        Issue,
        Ledger.issue,
    ),
    Posting("adjust", "/adjust", "A stocktake: post the difference from on hand", Adjust, Ledger.adjust),
    Posting(
        "split",
        "/split",
        "Cut pieces off a lot; each piece becomes a new lot",
        Split,
        Ledger.split,
        transaction=attrgetter("transaction"),
    ),
    Posting(
        "merge",
        "/merge",
        "Combine lots into bundles of a size, plus one remainder lot",
        Merge,
        Ledger.merge,
        transaction=attrgetter("transaction"),
    ),
)


def register(posting: Posting) -> None:
    def endpoint(request: Request, body: Body, token: Token, key: IdempotencyKey = None) -> Response:
        return posted(posting.transaction(posting.call(ledger(request), **body.model_dump(), key=key)))

    endpoint.__annotations__ |= {"body": posting.body, "token": Annotated[Token, Depends(bearer(posting.scope))]}
    router.add_api_route(
        posting.path,
        endpoint,
        methods=["POST"],
        name=posting.name,
        summary=posting.summary,
        response_model=TransactionDocument,
        responses=POSTED,
    )


for _posting in POSTINGS:
    register(_posting)


@router.post(
    "/transactions/{transaction_id}/revert",
    summary="Post the compensating transaction",
    response_model=TransactionDocument,
    responses=POSTED,
)
def revert(
    request: Request,
    token: Syncer,
    transaction_id: RowId,
    body: Revert | None = None,
    key: IdempotencyKey = None,
) -> Response:
    return posted(ledger(request).revert(transaction_id, **(body or Revert()).model_dump(), key=key))


@router.get(
    "/transactions/{transaction_id}",
    summary="One transaction and its movements",
    response_model=TransactionDocument,
    responses=QUERIED,
)
def transaction(request: Request, token: Reader, transaction_id: RowId) -> Response:
    return posted(ledger(request).transaction(transaction_id))


@router.post(
    "/reservations",
    summary="Hold stock for someone; available = on hand − held",
    response_model=ReservationEntry,
    responses=POSTED,
)
def reserve(request: Request, body: Reserve, token: Syncer) -> Response:
    return json_response(render.reservation_dict(ledger(request).reserve(**body.model_dump())))


@router.get(
    "/reservations/{reservation_id}", summary="One reservation", response_model=ReservationEntry, responses=QUERIED
)
def reservation(request: Request, token: Reader, reservation_id: RowId) -> Response:
    return json_response(render.reservation_dict(ledger(request).reservation(reservation_id)))


@router.post(
    "/reservations/{reservation_id}/release",
    summary="End a hold without moving stock",
    response_model=ReservationEntry,
    responses=POSTED,
)
def release(request: Request, token: Syncer, reservation_id: RowId) -> Response:
    books = ledger(request)
    books.release(reservation_id)
    return json_response(render.reservation_dict(books.reservation(reservation_id)))


@router.post(
    "/reservations/{reservation_id}/commit",
    summary="Issue what a reservation holds and close it",
    response_model=TransactionDocument,
    responses=POSTED,
)
def commit(
    request: Request,
    token: Syncer,
    reservation_id: RowId,
    body: Commit | None = None,
    key: IdempotencyKey = None,
) -> Response:
    return posted(ledger(request).commit(reservation_id, **(body or Commit()).model_dump(), key=key))


@router.get(
    "/balance",
    summary="Quantity on hand, now or as of a past time",
    response_model=BalanceDocument,
    responses=QUERIED,
)
def balance(
    request: Request,
    token: Reader,
    item: str,
    location: str | None = None,
    lot: str | None = None,
    as_of: datetime | None = None,
) -> Response:
    figure = ledger(request).balance(item, location, lot=lot, as_of=as_of)
    return json_response(render.balance_dict(item, location, lot, as_of, figure))


@router.get(
    "/available",
    summary="On hand minus what open reservations hold",
    response_model=AvailableDocument,
    responses=QUERIED,
)
def available(request: Request, token: Reader, item: str, location: str) -> Response:
    figure = ledger(request).available(item, location)
    return json_response(render.available_dict(item, location, figure))


@router.get(
    "/positions",
    summary="Each real location holding an item: on hand, reserved, available",
    response_model=list[PositionEntry],
    responses=QUERIED,
)
def positions(request: Request, token: Reader, item: str) -> Response:
    return json_response([render.position_dict(*row) for row in ledger(request).positions(item)])


@router.get(
    "/lots/{lot}/history",
    summary="Every movement of a lot, oldest first",
    response_model=list[LotEventEntry],  # type: ignore[valid-type]
    responses=QUERIED,
)
def history(request: Request, token: Reader, lot: str, item: Annotated[str | None, Query()] = None) -> Response:
    return json_response([e._asdict() for e in ledger(request).history(lot, item=item)])


@router.get(
    "/valuation",
    summary="Stock on hand valued: remaining quantity × unit cost, per lot",
    response_model=list[LotValueEntry],  # type: ignore[valid-type]
    responses=QUERIED,
)
def valuation(request: Request, token: Reader, item: str | None = None) -> Response:
    return json_response([v._asdict() for v in ledger(request).valuation(item)])
