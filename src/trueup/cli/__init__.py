"""The `trueup` command line: a thin layer over the library (parse, call, render).

Each command lives in a module by noun (`check`, `repair`, `ledger`, ...), imported only when
that command runs or shows its help: see `trueup.cli.app`.
"""

from trueup.cli.app import app

__all__ = ["app", "main"]


def main() -> None:
    app()
