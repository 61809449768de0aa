"""The root Typer app, whose commands load lazily: a command's module is imported when it runs or shows its help.

`trueup --help` lists every command from `COMMANDS` (its module and one-line help) and
imports none of them, so start-up pays for Typer alone, not for SQLAlchemy, pydantic or
polars. `trueup check …` imports `trueup.cli.check`, which registers its commands on `app`
as before; only then is the command built. tests/test_cli_startup.py holds each line of
`COMMANDS` equal to its command's own help.
"""

from __future__ import annotations

import importlib
from typing import Annotated, Any, NamedTuple

import typer
import typer.core
import typer.main

from trueup import __version__
from trueup.cli import common


class Listed(NamedTuple):
    module: str  # under trueup.cli
    help: str  # the command's one-line help, as its --help starts


# The order of `trueup --help`: plain commands, then groups, each in the order registered.
COMMANDS = {
    "demo": Listed("setup", "Build a small SQLite shop with drift of four real-world kinds, then check it."),
    "init": Listed(
        "setup",
        "Write a commented trueup.toml: a starter (with --database, rules guessed from its schema) or a --preset's "
        "rules.",
    ),
    "check": Listed(
        "check", "Measure drift between each rule's recorded figure and its sources; exit 1 if any drifted."
    ),
    "plan": Listed(
        "repair",
        "Show exactly what a repair would change, per key (the dry run); exit 1 if anything would or was left out.",
    ),
    "apply": Listed(
        "repair",
        "Back up, correct every drifted key in one transaction (or resumable chunks) with an audit trail, verify.",
    ),
    "undo": Listed("repair", "Put back exactly what a run changed, in one transaction; refused if rows changed since."),
    "watch": Listed("sync", "Check (and with --apply repair) every few minutes, until stopped; rounds never overlap."),
    "sync": Listed("sync", "Check (and with --apply repair) just these items: cheap enough to run after every sale."),
    "history": Listed("sync", "Show the drift sync rounds found, newest first, with repairs and recurring keys."),
    "restore": Listed(
        "backup",
        "Replace the backed-up tables with their contents in a verified backup, as a run `trueup undo` reverses.",
    ),
    "cost": Listed(
        "cost",
        "Cost of goods sold from sales and purchase-lot exports; bad SKUs are quarantined (exit 1), never the batch.",
    ),
    "serve": Listed(
        "serve", "Run the HTTP API, the dashboard and (with --watch) scheduled watch rounds, until stopped."
    ),
    "runs": Listed("runs", "List the latest applies and undos recorded in the database, newest first."),
    "backup": Listed(
        "backup", "Back up whole tables with the database's own tool (default: every rule's recorded table)."
    ),
    "ledger": Listed("ledger", "An append-only stock ledger: post movements, query balances, verify."),
    "token": Listed("serve", "API tokens for `trueup serve`: create (shown once), list, revoke."),
    "guard": Listed("guard", "Stop drift at its source: triggers generated from a rule."),
}


class Group(typer.core.TyperGroup):
    """A Typer group whose --help flag defaults to False.

    Typer 0.29 coerces every option value through pydantic unless it is already a bool, and its
    help flag is None when not given: so `trueup ledger receive --help` would import pydantic
    (about 0.1 s) to read the root's and the group's absent --help. Sub-apps use this class too.
    """

    def get_help_option(self, ctx: typer.Context) -> Any:
        option = super().get_help_option(ctx)
        if option is not None:
            option.default = False
        return option


class LazyGroup(Group):
    """The root group: every command listed from `COMMANDS`, each built from its module on first use."""

    def __init__(self, *, commands: dict[str, Any] | None = None, **attrs: Any) -> None:
        loaded = commands or {}
        listed = {
            name: loaded.get(name) or typer.core.TyperCommand(name, help=line.help) for name, line in COMMANDS.items()
        }
        super().__init__(commands=listed, **attrs)
        self._unloaded = {name for name in COMMANDS if name not in loaded}

    def get_command(self, ctx: typer.Context, cmd_name: str) -> Any:
        if cmd_name in self._unloaded:
            self.commands[cmd_name] = load(cmd_name)
            self._unloaded.discard(cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: typer.Context, formatter: Any) -> None:
        """The commands and their one-line help, as Typer lays them out, from what is loaded or listed."""
        shown = {name: command for name, command in self.commands.items() if not command.hidden}
        limit = formatter.width - 6 - max(map(len, shown))
        with formatter.section("Commands"):
            formatter.write_dl([(name, command.get_short_help_str(limit)) for name, command in shown.items()])


def load(name: str) -> Any:
    """Import the module of command `name` (it registers on `app`) and build the command."""
    importlib.import_module(f"trueup.cli.{COMMANDS[name].module}")
    for info in app.registered_commands:
        if typer.main.get_command_name(info.name or info.callback.__name__) == name:
            return typer.main.get_command_from_info(
                info, pretty_exceptions_short=app.pretty_exceptions_short, rich_markup_mode=app.rich_markup_mode
            )
    group = next(group for group in app.registered_groups if group.name == name)
    return typer.main.get_group_from_info(
        group,
        pretty_exceptions_short=app.pretty_exceptions_short,
        rich_markup_mode=app.rich_markup_mode,
        suggest_commands=app.suggest_commands,
    )


def command_paths(group: Any = None, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command's path, sub-commands included, in `--help` order (this imports every command module)."""
    group = group or typer.main.get_command(app)
    context = typer.Context(group)
    paths = []
    for name in group.list_commands(context):
        paths.append((*prefix, name))
        command = group.get_command(context, name)
        if isinstance(command, typer.core.TyperGroup):
            paths.extend(command_paths(command, (*prefix, name)))
    return paths


app = typer.Typer(
    name="trueup",
    cls=LazyGroup,
    help="Make inventory add up: measure, repair and keep true the stock figures in any SQL database.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"trueup {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    traceback: Annotated[bool, typer.Option("--traceback", help="Show the full traceback of errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    common.STATE.traceback = traceback
