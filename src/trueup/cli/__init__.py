"""The `trueup` command line: a thin layer over the library (parse, call, render)."""

from trueup.cli import check, ledger, setup  # noqa: F401  (importing registers the commands)
from trueup.cli.app import app


def main() -> None:
    app()
