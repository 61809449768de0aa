"""`trueup watch`, `trueup sync` and `trueup history`: keeping figures true."""

from __future__ import annotations

import gc
import signal
import threading
from datetime import timedelta
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from trueup.cli import common
from trueup.cli.app import app
from trueup.cli.options import (
    ConfigOption,
    DatabaseOption,
    KeyOption,
    Output,
    OutputFormatOption,
    RuleOption,
    TriggeredByOption,
    YesOption,
)
from trueup.errors import UsageError

if TYPE_CHECKING:
    from trueup.reconcile.sync import Watcher


def duration(text: str) -> timedelta:
    """`90s`, `5m`, `2h`, `7d` (or plain seconds)."""
    from trueup.config import parse_duration

    try:
        return parse_duration(text)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None


class RoundFormat(StrEnum):
    text = "text"
    table = "table"  # the same as text: what `sync --format` used to say
    json = "json"


def duration_option(flag: str, help: str) -> typer.models.OptionInfo:
    return typer.Option(flag, parser=duration, metavar="DURATION", help=help)


ApplyOption = Annotated[bool, typer.Option("--apply", help="Repair the drift found (as an audited run).")]
WaitOption = Annotated[
    float,
    typer.Option(
        "--wait",
        metavar="SECONDS",
        help="Wait this long for a round of the same rule to end; then skip (sync: queue the items for it).",
    ),
]
MaxChanges = Annotated[
    int | None,
    typer.Option(
        metavar="N", min=0, help="Refuse repairs writing more rows.", show_default="[sync] limits: 1000 rows, 5 %"
    ),
]
FormatOption = Annotated[
    RoundFormat,
    typer.Option("--format", "-f", "--log-format", help="Each round as a line of text or a JSON object."),
]
MaxAbsDelta = Annotated[Decimal | None, typer.Option(metavar="X", help="Refuse repairs of any row by more.")]


@app.command()
@common.handles_errors
def watch(
    config: ConfigOption = None,
    database: DatabaseOption = None,
    rule: RuleOption = None,
    every: Annotated[timedelta, duration_option("--every", "Time between rounds.")] = "5m",
    once: Annotated[bool, typer.Option("--once", help="One round, then exit (for cron and systemd timers).")] = False,
    apply: ApplyOption = False,
    full_every: Annotated[
        int, typer.Option(metavar="N", min=1, help="Every Nth round scans everything; the others only what changed.")
    ] = 12,
    overlap: Annotated[timedelta, duration_option("--overlap", "How late a record may commit after its time.")] = "5m",
    recurring_window: Annotated[
        timedelta, duration_option("--recurring-window", "Drifting again this soon after a repair is recurring.")
    ] = "24h",
    wait: WaitOption = 0,
    max_changes: MaxChanges = None,
    max_abs_delta: MaxAbsDelta = None,
    yes: YesOption = False,
    fmt: FormatOption = RoundFormat.text,
    metrics_file: Annotated[
        Path | None, typer.Option(metavar="FILE", help="Write Prometheus metrics here after each round.")
    ] = None,
    triggered_by: TriggeredByOption = "schedule",
) -> None:
    """Check (and with --apply repair) every few minutes, until stopped; rounds never overlap.

    Rounds are incremental where sources have a `time` (or `sequence`) column, with a full
    scan every --full-every rounds. SIGTERM or Ctrl-C stops it after the round under way; a
    second one stops it at once, rolling back what the round had not committed (exit 130).

    Example: trueup watch --every 5m --apply --metrics-file /var/lib/node_exporter/trueup.prom
    """
    from trueup.config import load_config
    from trueup.db import open_engine
    from trueup.reconcile.sync import SyncOptions, Watcher

    cfg = load_config(config)
    rules = cfg.select_rules(rule)  # unknown rule names fail now, not at the first round
    options = SyncOptions(
        apply=apply,
        max_changes=max_changes,
        max_abs_delta=max_abs_delta,
        yes=yes,
        triggered_by=triggered_by,
        full_every=full_every,
        overlap=overlap,
        recurring_window=recurring_window,
        wait=wait,
    )
    engine = open_engine(cfg.database_url(database))
    watcher = Watcher(engine, cfg, rule, options)
    metrics = None
    if metrics_file:
        from trueup.report.metrics import Metrics  # prometheus_client, for this option only

        metrics = Metrics(metrics_file)
    stop = _Stop.on_signals()
    try:
        if not once:
            gc.freeze()  # what start-up made lives all along: full collections between rounds skip it
            seconds = every.total_seconds()
            typer.echo(
                f"watching {len(rules)} rule(s) every {seconds:g} s; Ctrl-C or SIGTERM stops after the round", err=True
            )
        unresolved = _rounds(watcher, stop, None if once else every, fmt, metrics)
    except BaseException:
        if not stop.interrupted:
            raise
        typer.echo("interrupted: the round under way was rolled back", err=True)
        raise typer.Exit(130) from None
    finally:
        stop.restore()
        engine.dispose()
    raise typer.Exit(1 if once and unresolved else 0)


def _rounds(watcher: Watcher, stop: threading.Event, every: timedelta | None, fmt: RoundFormat, metrics: Any) -> bool:
    """Round after round (one if `every` is None) until stopped; whether the last left drift behind."""
    from trueup.report.sync import round_json, round_line

    while True:
        results = watcher.round()
        for result in results:
            typer.echo(round_json(result) if fmt is RoundFormat.json else round_line(result))
        if metrics:
            metrics.record(results)
        if every is None or stop.wait(every.total_seconds()):
            return any(r.unresolved for r in results)


class _Interrupted(BaseException):
    """Raised by the second SIGTERM or Ctrl-C, wherever the round is: its open transaction rolls back."""


class _Stop(threading.Event):
    """Set by the first SIGTERM or SIGINT: the loop stops after the round under way, never mid-transaction.
    A second one interrupts the round itself."""

    interrupted = False
    previous: dict[int, Any]  # the handlers to put back

    @classmethod
    def on_signals(cls) -> _Stop:
        stop = cls()
        stop.previous = {}
        if threading.current_thread() is threading.main_thread():
            stop.previous = {signum: signal.signal(signum, stop.handle) for signum in (signal.SIGTERM, signal.SIGINT)}
        return stop

    def restore(self) -> None:
        """Put back the handlers there were before."""
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)

    def handle(self, signum: int, frame: object) -> None:
        if self.interrupted:
            return  # already on its way out
        if not self.is_set():
            self.set()
            typer.echo("stopping after this round (send it again to stop now)", err=True)
            return
        self.interrupted = True
        raise _Interrupted()


@app.command()
@common.handles_errors
def sync(
    rule: Annotated[str, typer.Option("--rule", "-r", metavar="NAME", help="The rule.")],
    key: KeyOption = None,
    config: ConfigOption = None,
    database: DatabaseOption = None,
    apply: ApplyOption = False,
    triggered_by: TriggeredByOption = "hook",
    wait: WaitOption = 10,
    max_changes: MaxChanges = None,
    max_abs_delta: MaxAbsDelta = None,
    yes: YesOption = False,
    fmt: FormatOption = RoundFormat.text,
) -> None:
    """Check (and with --apply repair) just these items: cheap enough to run after every sale.

    If a round of the rule is running, the items are queued for it (status "queued").

    Example: trueup sync --rule storefront --key 1,10 --triggered-by sale_creation --apply
    """
    if not key:
        raise UsageError("name the items to sync with --key (trueup watch checks everything)")
    from trueup.config import load_config
    from trueup.db import open_engine
    from trueup.reconcile.sync import SyncOptions, run_round
    from trueup.report.sync import round_json, round_line

    cfg = load_config(config)
    options = SyncOptions(
        apply=apply,
        max_changes=max_changes,
        max_abs_delta=max_abs_delta,
        yes=yes,
        triggered_by=triggered_by,
        wait=wait,
    )
    engine = open_engine(cfg.database_url(database))
    try:
        result = run_round(engine, cfg, rule, options, keys=[tuple(k.split(",")) for k in key])
    finally:
        engine.dispose()
    typer.echo(round_json(result) if fmt is RoundFormat.json else round_line(result))
    raise typer.Exit(1 if result.unresolved else 0)


@app.command("history")
@common.handles_errors
def history_(
    config: ConfigOption = None,
    database: DatabaseOption = None,
    rule: Annotated[str | None, typer.Option("--rule", "-r", metavar="NAME", help="Only this rule.")] = None,
    key: Annotated[
        str | None, typer.Option("--key", "-k", metavar="VALUE[,VALUE]", help="Only this item (with --rule).")
    ] = None,
    since: Annotated[timedelta | None, duration_option("--since", "Only this recent, e.g. 7d.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, metavar="N", help="Show at most N.")] = 50,
    fmt: OutputFormatOption = Output.table,
) -> None:
    """Show the drift sync rounds found, newest first, with repairs and recurring keys.

    Example: trueup history --rule storefront --key 1,10 --since 7d
    """
    from trueup.db import connect, open_engine
    from trueup.reconcile import history
    from trueup.reconcile.audit import now
    from trueup.reconcile.check import typed_key
    from trueup.report.format import to_json
    from trueup.report.sync import history_document, print_sightings

    cfg = common.load_config_for(config, database)
    engine = open_engine(cfg.database_url(database))
    try:
        with connect(engine) as connection:
            if key and rule is None:
                raise UsageError("--key needs --rule: keys are per rule")
            key_values = typed_key(connection, cfg, rule, tuple(key.split(","))) if key and rule else None
            found = history.sightings(
                connection, rule=rule, key=key_values, since=now() - since if since else None, limit=limit
            )
    finally:
        engine.dispose()
    if fmt is Output.json:
        typer.echo(to_json(history_document(found)))
    else:
        print_sightings(found, common.stdout())
