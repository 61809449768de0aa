"""The root Typer app; command modules register themselves on it (see trueup.cli.__init__)."""

from __future__ import annotations

from typing import Annotated

import typer

from trueup import __version__
from trueup.cli import common

app = typer.Typer(
    name="trueup",
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
