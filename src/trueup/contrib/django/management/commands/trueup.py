"""`manage.py trueup COMMAND …`: the trueup command line, against this project's database and config.

The arguments go to the same Typer app as the `trueup` command, with the database of
`--database-alias` (default `default`) in $TRUEUP_DATABASE_URL and `settings.TRUEUP_CONFIG` in
$TRUEUP_CONFIG for the duration of the call; an explicit `--database` or `--config` still wins.
Exit codes are trueup's: 0 all good, 1 found something, 2 could not run.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import DEFAULT_DB_ALIAS

from trueup.config import DATABASE_URL_ENV
from trueup.contrib.django.database import config_path, database_url
from trueup.errors import TrueupError

ALIAS_OPTION = "--database-alias"
CONFIG_ENV = "TRUEUP_CONFIG"
DATABASE_OPTIONS = ("--database", "-d")  # a URL given to trueup itself: settings.DATABASES is not read


class Command(BaseCommand):
    help = (
        "Run a trueup command (check, plan, apply, undo, runs, watch, sync, history, ...) against "
        "settings.DATABASES. Example: manage.py trueup check --format json"
    )
    requires_system_checks = ()  # trueup reads the database as it is; models need not be valid

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            ALIAS_OPTION, metavar="NAME", default=None, help="The settings.DATABASES alias to use (default: default)."
        )
        parser.add_argument("args", nargs=argparse.REMAINDER, metavar="COMMAND ...", help="A trueup command.")

    def handle(self, *args: str, **options: Any) -> None:
        alias, rest = split_alias(list(args))
        argv = (["--traceback"] if options.get("traceback") else []) + rest
        code = run(argv, alias or options["database_alias"] or DEFAULT_DB_ALIAS)
        if code:
            sys.exit(code)


def run(argv: list[str], alias: str = DEFAULT_DB_ALIAS) -> int:
    """Run the trueup command line with `argv` against `alias`; its exit code."""
    from trueup.cli import app
    from trueup.cli.common import report_error

    values = {CONFIG_ENV: str(config_path())}
    if not any(arg in DATABASE_OPTIONS or arg.startswith("--database=") for arg in argv):
        try:
            values[DATABASE_URL_ENV] = database_url(alias)
        except TrueupError as error:
            report_error(error)
            return error.exit_code
    with environment(values):
        try:
            app(args=argv or ["--help"], prog_name="manage.py trueup")
        except SystemExit as stopped:
            return stopped.code if isinstance(stopped.code, int) else (0 if stopped.code is None else 2)
    return 0


def split_alias(args: list[str]) -> tuple[str | None, list[str]]:
    """`--database-alias NAME` (or `=NAME`) taken out of the trueup arguments, wherever it stands."""
    alias, rest = None, []
    iterator = iter(args)
    for arg in iterator:
        if arg == ALIAS_OPTION:
            alias = next(iterator, None)
        elif arg.startswith(ALIAS_OPTION + "="):
            alias = arg.partition("=")[2]
        else:
            rest.append(arg)
    return alias, rest


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """Environment variables set for the duration of a block; the previous values are restored."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
