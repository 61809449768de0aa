"""trueup: make inventory add up.

The Python API mirrors the CLI:

    import trueup
    report = trueup.check("trueup.toml")          # -> CheckReport
    for rule in report.rules:
        print(rule.name, rule.drifted, rule.abs_drift)
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

if TYPE_CHECKING:
    from trueup.config import Config
    from trueup.reconcile.check import CheckReport


def check(
    config: Config | str | Path = "trueup.toml",
    *,
    database: str | None = None,
    rules: list[str] | None = None,
    keep: int | None = 20,
) -> CheckReport:
    """Check the config's rules (all, or those named) and custom checks; keep the worst `keep` keys per rule."""
    from trueup.config import Config, load_config
    from trueup.db import connect, open_engine
    from trueup.reconcile.check import CheckRun

    cfg = config if isinstance(config, Config) else load_config(config)
    engine = open_engine(cfg.database_url(database))
    try:
        with connect(engine) as connection:
            return CheckRun(connection, cfg, rules=rules, keep=keep, with_checks=not rules).report()
    finally:
        engine.dispose()
