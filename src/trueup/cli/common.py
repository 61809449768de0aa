"""What every command shares: error handling, consoles, the database session, output files."""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

import typer

from trueup.errors import TrueupError

if TYPE_CHECKING:  # these load when a command runs, not at start-up (see trueup.cli.app)
    from rich.console import Console
    from sqlalchemy.engine import Connection

    from trueup.config import Config
    from trueup.reconcile.drift import RuleResult

log = logging.getLogger("trueup")
F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class State:
    traceback: bool = False


STATE = State()


def stdout() -> Console:
    from rich.console import Console

    return Console(soft_wrap=False)


def stderr(*, terminal: bool | None = None) -> Console:
    from rich.console import Console

    return Console(stderr=True, force_terminal=terminal)


def handles_errors(function: F) -> F:
    """Turn a TrueupError into one line on stderr and its exit code (1 or 2)."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except TrueupError as error:
            if STATE.traceback:
                raise
            report_error(error)
            raise typer.Exit(error.exit_code) from None

    return wrapper  # type: ignore[return-value]


def report_error(error: TrueupError) -> None:
    """The one line on stderr a command prints when it cannot go on."""
    from rich.text import Text

    from trueup.report.format import literal

    stderr().print(Text.assemble(("error:", "bold red"), " ", literal(str(error))), soft_wrap=True)


@contextmanager
def session(config: Config, database: str | None) -> Iterator[Connection]:
    """A connection to the config's database (or `database`), disposed of afterwards."""
    from trueup.db import connect, open_engine

    engine = open_engine(config.database_url(database))
    try:
        with connect(engine) as connection:
            yield connection
    finally:
        engine.dispose()


@contextmanager
def output(path: Path | None) -> Iterator[TextIO]:
    """stdout, or `path` written only if the command completes."""
    if path is None:
        yield sys.stdout
        return
    partial = path.with_name(path.name + ".partial")
    try:
        with partial.open("w", encoding="utf-8") as handle:
            yield handle
        partial.replace(path)
    except OSError as error:
        raise TrueupError(f"{path}: cannot write: {error.strerror}") from None
    finally:
        partial.unlink(missing_ok=True)


def interactive(quiet: bool) -> bool:
    """Progress displays only for a person watching: terminals on both streams, not --quiet."""
    return not quiet and sys.stdout.isatty() and sys.stderr.isatty()


class Activity:
    """A Rich progress display on stderr: a spinner, what is happening (rule or phase), elapsed time."""

    def __init__(self, enabled: bool, *, terminal: bool | None = None):
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            TimeElapsedColumn(),
            console=stderr(terminal=terminal),
            transient=True,
            disable=not enabled,
        )
        self._task: Any = None
        self._bar: Any = None

    def __enter__(self) -> Activity:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.__exit__(*exc)

    def rule_started(self, name: str, index: int, total: int) -> None:
        self.phase(f"rule {index + 1}/{total}: {name}")

    def rule_finished(self, result: RuleResult) -> None:
        self.phase("")

    def chunks(self, done: int, total: int) -> None:
        """A bar of a chunked apply's chunks, below the phase."""
        self.counted("chunk", done, total)

    def counted(self, what: str, done: int, total: int) -> None:
        """A bar of `done` out of `total` steps (`what 3/10`), below the phase."""
        if self._bar is None:
            self._bar = self._progress.add_task(what, total=total)
        self._progress.update(self._bar, completed=done, total=total, description=f"{what} {done}/{total}")

    def phase(self, description: str) -> None:
        if self._task is not None:
            self._progress.remove_task(self._task)
            self._task = None
        if description:
            self._task = self._progress.add_task(description, total=None)


def load_config_for(path: Path | None, database: str | None) -> Config:
    """The config; commands that need only a database may run without one when a URL is given."""
    from trueup.config import DATABASE_URL_ENV, Config, load_config
    from trueup.paths import DEFAULT_CONFIG

    if path is None and not DEFAULT_CONFIG.exists() and (database or os.environ.get(DATABASE_URL_ENV)):
        return Config()
    return load_config(path)


def confirmer() -> Callable[[str], bool] | None:
    """Ask at the terminal; None (refuse) when nobody is there to answer."""
    if not sys.stdin.isatty():
        return None
    return lambda question: typer.confirm(f"{question[0].upper()}{question[1:]}. Proceed?", default=False, err=True)


def warn(message: str) -> None:
    from rich.text import Text

    from trueup.report.format import literal

    stderr().print(Text.assemble(("warning:", "yellow"), " ", literal(message)), soft_wrap=True)


def note(message: str, console: Console | None = None) -> None:
    """A line for people (stderr unless `console` is given), printed as written."""
    from trueup.report.format import literal

    (console or stderr()).print(literal(message), soft_wrap=True)
