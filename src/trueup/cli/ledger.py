"""`trueup ledger …`: every Ledger operation as a command (parse, call one method, render).

The ledger's database is `--database`, else $TRUEUP_LEDGER_URL, else the
config's [ledger].url, else its database. Refusals (not enough stock, already
reverted, a reused key) exit 1; bad arguments exit 2.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from trueup.cli import common
from trueup.cli.app import Group, app
from trueup.cli.options import ConfigOption, Output, OutputFormatOption
from trueup.errors import UsageError
from trueup.paths import DEFAULT_CONFIG

if TYPE_CHECKING:
    from trueup.ledger import Ledger
    from trueup.ledger.records import Transaction

# trueup.ledger loads SQLAlchemy, so the help of `issue` and `commit` names the reasons from here;
# tests/test_cli_startup.py holds them equal to trueup.ledger.ISSUE_REASONS.
ISSUE_REASONS = ("sale", "usage", "scrap")

ledger_app = typer.Typer(
    cls=Group, help="An append-only stock ledger: post movements, query balances, verify.", no_args_is_help=True
)
app.add_typer(ledger_app, name="ledger")


LedgerDatabase = Annotated[
    str | None,
    typer.Option(
        "--database", "-d", help="Ledger database URL.", show_default="$TRUEUP_LEDGER_URL, [ledger].url, [database].url"
    ),
]
KeyOption = Annotated[str | None, typer.Option("--key", "-k", help="Idempotency key: a retry returns the original.")]
AtOption = Annotated[str | None, typer.Option("--at", help="When it happened (ISO 8601; default now, UTC).")]
LotsOption = Annotated[
    list[str] | None, typer.Option("--lot", help="Take from this lot (repeatable; LOT=QTY for exact amounts).")
]
ItemArg = Annotated[str, typer.Argument(help="The item (SKU).")]
LocationArg = Annotated[str, typer.Argument(help="A real location.")]
QtyArg = Annotated[str, typer.Argument(help="Quantity (a decimal number).")]


@contextmanager
def opened(config: Any, database: str | None) -> Iterator[Ledger]:
    from trueup.config import Config, load_config
    from trueup.ledger import Ledger

    cfg = load_config(config) if config is not None or DEFAULT_CONFIG.exists() else Config()
    ledger = Ledger(cfg.ledger_url(database))
    try:
        yield ledger
    finally:
        ledger.close()


def moment(text: str | None, option: str = "--at") -> datetime | None:
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{option}: {text!r} is not an ISO 8601 time (e.g. 2025-03-01T09:30)") from None


def lots_arg(values: list[str] | None) -> list[str] | dict[str, str] | None:
    if not values:
        return None
    if all("=" in v for v in values):
        return dict(v.split("=", 1) for v in values)
    if any("=" in v for v in values):
        raise UsageError("--lot: give either lot names or LOT=QTY pairs, not both")
    return values


def show(fmt: Output, value: Any, as_dict: Callable[[Any], Any], draw: Callable[[Any, Any], None]) -> None:
    from trueup.report.format import to_json

    if fmt is Output.json:
        common.stdout().file.write(to_json(as_dict(value)) + "\n")
    else:
        draw(value, common.stdout())


def show_transaction(fmt: Output, transaction: Transaction) -> None:
    from trueup.report import ledger as render

    show(fmt, transaction, render.transaction_dict, render.print_transaction)


@ledger_app.command()
@common.handles_errors
def receive(
    item: ItemArg,
    location: LocationArg,
    qty: QtyArg,
    unit_cost: Annotated[str, typer.Option("--unit-cost", help="Cost per unit of the new lot.")],
    lot: Annotated[str | None, typer.Option("--lot", help="Name the new lot.", show_default="L<id>")] = None,
    key: KeyOption = None,
    at: AtOption = None,
    database: LedgerDatabase = None,
    config: ConfigOption = None,
    fmt: OutputFormatOption = Output.table,
) -> None:
    """Stock arrives from the supplier into a new lot.

    Example: trueup ledger receive pipe-20mm warehouse 500 --unit-cost 0.40 --lot ROLL-1 --key po-17
    """
    with opened(config, database) as ledger:
        posted = ledger.receive(item, location, qty, unit_cost=unit_cost, lot=lot, key=key, at=moment(at))
    show_transaction(fmt, posted)


@ledger_app.command()
@common.handles_errors
def transfer(
    item: ItemArg,
    from_location: Annotated[str, typer.Argument(help="Where the stock is.")],
    to_location: Annotated[str, typer.Argument(help="Where it goes.")],
    qty: QtyArg,
    lot: LotsOption = None,
    key: KeyOption = None,
    at: AtOption = None,
    database: LedgerDatabase = None,
    config: ConfigOption = None,
    fmt: OutputFormatOption = Output.table,
) -> None:
    """Move stock between locations, oldest lots first.

    Example: trueup ledger transfer pipe-20mm warehouse shop 120
    """
    with opened(config, database) as ledger:
        posted = ledger.transfer(item, from_location, to_location, qty, lots=lots_arg(lot), key=key, at=moment(at))
    show_transaction(fmt, posted)


@ledger_app.command()
@common.handles_errors
def issue(
    item: ItemArg,
    location: LocationArg,
    qty: QtyArg,
    reason: Annotated[str, typer.Option("--reason", help=f"One of: {', '.join(ISSUE_REASONS)}.")] = "sale",
    lot: LotsOption = None,
    key: KeyOption = None,
    at: AtOption = None,
    database: LedgerDatabase = None,
    config: ConfigOption = None,
    fmt: OutputFormatOption = Output.table,
) -> None:
    """Stock leaves (sale, usage, scrap), oldest lots first; prints the cost of the goods.

    Example: trueup ledger issue pipe-20mm shop 30 --reason sale --key order-881
    """
    with opened(config, database) as ledger:
        posted = ledger.issue(item, location, qty, reason=reason, lots=lots_arg(lot), key=key, at=moment(at))
    show_transaction(fmt, posted)


@ledger_app.command()
@common.handles_errors
def adjust(
    item: ItemArg,
    location: LocationArg,
    counted: Annotated[str, typer.Argument(help="The quantity counted.")],
    unit_cost: Annotated[
        str | None, typer.Option("--unit-cost", help="Cost of found stock.", show_default="newest lot's")
    ] = None,
    key: KeyOption = None,
    at: AtOption = None,
    database: LedgerDatabase = None,
    config: ConfigOption = None,
    fmt: OutputFormatOption = Output.table,
) -> None:
    """Record a stocktake: post the difference from on hand to the adjustment location.

    Example: trueup ledger adjust pipe-20mm shop 88
    """
    with opened(config, database) as ledger:
        posted = ledger.adjust(item, location, counted, unit_cost=unit_cost, key=key, at=moment(at))
    show_transaction(fmt, posted)


@ledger_app.command()
@common.handles_errors
def split(
    lot: Annotated[str, typer.Argument(help="The lot to cut.")],
    pieces: Annotated[list[str], typer.Argument(help="Size of each piece.")],
    location: Annotated[str | None, typer.Option("--location", help="Where the lot is (if in several places).")] = None,
    item: Annotated[str | None, typer.Option("--item", help="The lot's item (if the name is ambiguous).")] = None,
    key: KeyOption = None,
    at: AtOption = None,
    database: LedgerDatabase = None,
    config: ConfigOption = None,
    fmt: OutputFormatOption = Output.table,
) -> None:
    """Cut pieces off a lot (a roll into lengths); each piece becomes a new lot.

    Example: trueup ledger split ROLL-1 100 100 50
    """
    with opened(config, database) as ledger:
        made = ledger.split(lot, pieces, location=location, item=item, key=key, at=moment(at))
    show_transaction(fmt, made.transaction)


@ledger_app.command()
@common.handles_errors
def merge(
    lots: Annotated[list[str], typer.Argument(help="The lots to combine (all of each).")],
    bundle_size: Annotated[str, typer.Option("--bundle-size", help="Quantity in each bundle.")],
    bundles: Annotated[int, typer.Option("--bundles", min=1, help="How many bundles to make.")],
    location: Annotated[str | None, typer.Option("--location", help="Where the lots are.")] = None,
    item: Annotated[str | None, typer.Option("--item", help="The lots' item (if names are ambiguous).")] = None,
    key: KeyOption = None,
    at: AtOption = None,
    database: LedgerDatabase = None,
    config: ConfigOption = None,
    fmt: OutputFormatOption = Output.table,
) -> None:
    """Combine lots into bundles of a size, plus one remainder lot.

    Example: trueup ledger merge L7-1 L7-2 L9 --bundle-size 10 --bundles 3
    """
    with opened(config, database) as ledger:
        made = ledger.merge(lots, bundle_size, bundles, location=location, item=item, key=key, at=moment(at))
    show_transaction(fmt, made.transaction)


@ledger_app.command()
@common.handles_errors
def revert(
    transaction_id: Annotated[int, typer.Argument(help="The transaction to undo.")],
    force: Annotated[
        bool, typer.Option("--force", help="Revert even if its stock moved on, if no balance goes negative.")
    ] = False,
    key: KeyOption = None,
    at: AtOption = None,
    database: LedgerDatabase = None,
    config: ConfigOption = None,
    fmt: OutputFormatOption = Output.table,
) -> None:
    """Post the compensating transaction of a transaction; refused if already reverted.

    Example: trueup ledger revert 42
    """
    with opened(config, database) as ledger:
        posted = ledger.revert(transaction_id, force=force, key=key, at=moment(at))
    show_transaction(fmt, posted)


@ledger_app.command()
@common.handles_errors
def reserve(
    item: ItemArg,
    location: LocationArg,
    qty: QtyArg,
    hold_for: Annotated[str, typer.Option("--hold-for", help="Who it is held for (an order, a job).")],
    expires_at: Annotated[str | None, typer.Option("--expires-at", help="When the hold lapses (ISO 8601).")] = None,
    database: LedgerDatabase = None,
    config: ConfigOption = None,
    fmt: OutputFormatOption = Output.table,
) -> None:
    """Hold stock for someone; available = on hand − held.

    Example: trueup ledger reserve pipe-20mm shop 40 --hold-for order-881 --expires-at 2025-03-02T00:00
    """
    from trueup.report import ledger as render

    with opened(config, database) as ledger:
        held = ledger.reserve(item, location, qty, hold_for=hold_for, expires_at=moment(expires_at, "--expires-at"))
    show(fmt, held, render.reservation_dict, render.print_reservation)


@ledger_app.command()
@common.handles_errors
def release(
    reservation_id: Annotated[int, typer.Argument(help="The reservation.")],
    database: LedgerDatabase = None,
    config: ConfigOption = None,
    fmt: OutputFormatOption = Output.table,
) -> None:
    """End a hold without moving stock.

    Example: trueup ledger release 7
    """
    from trueup.report import ledger as render

    with opened(config, database) as ledger:
        ledger.release(reservation_id)
        released = ledger.reservation(reservation_id)
    show(fmt, released, render.reservation_dict, render.print_reservation)


@ledger_app.command()
@common.handles_errors
def commit(
    reservation_id: Annotated[int, typer.Argument(help="The reservation.")],
    reason: Annotated[str, typer.Option("--reason", help=f"One of: {', '.join(ISSUE_REASONS)}.")] = "sale",
    key: KeyOption = None,
    at: AtOption = None,
    database: LedgerDatabase = None,
    config: ConfigOption = None,
    fmt: OutputFormatOption = Output.table,
) -> None:
    """Issue what a reservation holds and close it.

    Example: trueup ledger commit 7
    """
    with opened(config, database) as ledger:
        posted = ledger.commit(reservation_id, reason=reason, key=key, at=moment(at))
    show_transaction(fmt, posted)


@ledger_app.command()
@common.handles_errors
def balance(
    item: ItemArg,
    location: Annotated[str | None, typer.Argument(help="A location.", show_default="all real locations")] = None,
    lot: Annotated[str | None, typer.Option("--lot", help="Only this lot.")] = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="As it stood then (ISO 8601).")] = None,
    database: LedgerDatabase = None,
    config: ConfigOption = None,
    fmt: OutputFormatOption = Output.table,
) -> None:
    """Print the quantity on hand, now or as of a past time.

    Example: trueup ledger balance pipe-20mm shop --as-of 2025-03-01T00:00 --format json
    """
    from trueup.report import ledger as render

    when = moment(as_of, "--as-of")
    with opened(config, database) as ledger:
        figure = ledger.balance(item, location, lot=lot, as_of=when)
    row = render.balance_dict(item, location, lot, when, figure)
    show(fmt, row, dict, render.print_figure)


@ledger_app.command()
@common.handles_errors
def available(
    item: ItemArg,
    location: LocationArg,
    database: LedgerDatabase = None,
    config: ConfigOption = None,
    fmt: OutputFormatOption = Output.table,
) -> None:
    """Print on hand minus what open reservations hold.

    Example: trueup ledger available pipe-20mm shop
    """
    from trueup.report import ledger as render

    with opened(config, database) as ledger:
        figure = ledger.available(item, location)
    row = render.available_dict(item, location, figure)
    show(fmt, row, dict, render.print_figure)


@ledger_app.command()
@common.handles_errors
def history(
    lot: Annotated[str, typer.Argument(help="The lot.")],
    item: Annotated[str | None, typer.Option("--item", help="The lot's item (if the name is ambiguous).")] = None,
    database: LedgerDatabase = None,
    config: ConfigOption = None,
    fmt: OutputFormatOption = Output.table,
) -> None:
    """List every movement of a lot, oldest first.

    Example: trueup ledger history ROLL-1
    """
    from trueup.report import ledger as render

    with opened(config, database) as ledger:
        events = ledger.history(lot, item=item)
    show(fmt, events, lambda rows: [e._asdict() for e in rows], render.print_history)


@ledger_app.command()
@common.handles_errors
def valuation(
    item: Annotated[str | None, typer.Argument(help="Only this item.", show_default="all items")] = None,
    database: LedgerDatabase = None,
    config: ConfigOption = None,
    fmt: OutputFormatOption = Output.table,
) -> None:
    """Value the stock on hand: remaining quantity × unit cost, per lot.

    Example: trueup ledger valuation --format json
    """
    from trueup.report import ledger as render

    with opened(config, database) as ledger:
        lots = ledger.valuation(item)
    show(fmt, lots, lambda rows: [v._asdict() for v in rows], render.print_valuation)


@ledger_app.command()
@common.handles_errors
def verify(
    database: LedgerDatabase = None,
    config: ConfigOption = None,
    fmt: OutputFormatOption = Output.table,
) -> None:
    """Rebuild every balance from the movement log and compare; exit 1 if anything differs.

    Example: trueup ledger verify --format json
    """
    from trueup.report import table as check_table
    from trueup.report.json import report_dict

    with opened(config, database) as ledger:
        report = ledger.verify()
    show(fmt, report, report_dict, check_table.print_check)
    raise typer.Exit(report.exit_code)


@ledger_app.command("add-location")
@common.handles_errors
def add_location(
    name: Annotated[str, typer.Argument(help="The location.")],
    allow_negative: Annotated[bool, typer.Option("--allow-negative", help="Let its stock go below zero.")] = False,
    database: LedgerDatabase = None,
    config: ConfigOption = None,
) -> None:
    """Add a real location (or change whether it may go negative).

    Example: trueup ledger add-location backorders --allow-negative
    """
    with opened(config, database) as ledger:
        ledger.add_location(name, allow_negative=allow_negative)
