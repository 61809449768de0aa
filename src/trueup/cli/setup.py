"""`trueup demo` and `trueup init`: getting started."""

from __future__ import annotations

import shutil
import sys
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from trueup.cli import common
from trueup.cli.app import app
from trueup.cli.options import DatabaseOption, QuietOption
from trueup.errors import UsageError
from trueup.paths import DEFAULT_CONFIG

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

# The presets load SQLAlchemy, so `trueup init --help` offers their names from here;
# tests/test_cli_startup.py holds them equal to trueup.presets.PRESETS.
PRESET_NAMES = ("erpnext", "odoo", "saleor", "medusa", "spree")


@app.command()
@common.handles_errors
def demo(
    directory: Annotated[Path, typer.Argument(help="Where to build the demo shop.")] = Path("trueup-demo"),
    items: Annotated[int, typer.Option(min=10, help="Items per incident shape.")] = 200,
    quiet: QuietOption = False,
) -> None:
    """Build a small SQLite shop with drift of four real-world kinds, then check it.

    Example: trueup demo /tmp/shop && trueup check --config /tmp/shop/trueup.toml
    """
    from trueup.config import load_config
    from trueup.demo import build_demo
    from trueup.reconcile.check import CheckRun
    from trueup.report import money_for, write_check

    config_path = build_demo(directory, items=items)
    config = load_config(config_path)
    with common.session(config, None) as connection:
        run = CheckRun(connection, config, observer=common.Activity(False))
        write_check(run, "table", common.stdout().file, money=money_for(config))
    if not quiet:
        common.note(
            f"\nThe demo shop is {directory / 'shop.db'}; its config is {config_path}.\n"
            f"Try: {_program()} check --config {config_path} --format html --output drift.html"
        )


def _program() -> str:
    """How to run trueup from here: `trueup` when it is on the PATH, else the path that ran it (.venv/bin/trueup)."""
    ran = Path(sys.argv[0])
    return str(ran) if ran.name == "trueup" and not shutil.which("trueup") else "trueup"


PresetName = Enum("PresetName", {name: name for name in PRESET_NAMES}, type=str)  # type: ignore[misc]


@app.command()
@common.handles_errors
def init(
    database: DatabaseOption = None,
    config: Annotated[Path, typer.Option("--config", "-c", help="Where to write the config.")] = DEFAULT_CONFIG,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
    preset: Annotated[
        PresetName | None, typer.Option("--preset", help="Write the rules of a known application's schema.")
    ] = None,
) -> None:
    """Write a commented trueup.toml: a starter (with --database, rules guessed from its schema) or a --preset's rules.

    Example: trueup init --preset erpnext --database mysql://erp@localhost/site
    """
    if config.exists() and not force:
        raise UsageError(f"{config} already exists (use --force to overwrite it)")
    if database:
        from trueup.db import connect, open_engine

        engine = open_engine(database)
        try:
            with connect(engine) as connection:
                text = _config_text(preset, database, connection)
        finally:
            engine.dispose()
    else:
        text = _config_text(preset, None, None)
    config.write_text(text, encoding="utf-8")
    common.note(f"Wrote {config}. Edit its rules, then run: trueup check --config {config}")


def _config_text(preset: PresetName | None, url: str | None, connection: Connection | None) -> str:
    from trueup.presets import preset_config
    from trueup.starter import starter, summary

    if preset is None:
        made = starter(url, connection)
        if made.guess is not None:
            common.note(summary(made.guess))
        return made.text
    written = preset_config(preset.value, url, connection)
    common.note(
        f"Preset {preset.value}: {len(written.rules)} rule(s) ({', '.join(written.rules) or 'none'}), "
        f"{len(written.checks)} check(s)."
    )
    for reason in written.skipped:
        common.note(f"Skipped {reason}.")
    return written.text
