"""Guard rails for writes: size limits on a plan, and knowing when a database looks like production."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy.engine import URL

from trueup.errors import RefusedError, UsageError
from trueup.reconcile.plan import Plan

PRODUCTION_ENV = "TRUEUP_ENV"


@dataclass(frozen=True)
class Limits:
    """Refuse plans that write more rows, or correct any one row by more, than this."""

    max_changes: int | None = None
    max_abs_delta: Decimal | None = None

    def check(self, changes: int, worst: tuple[str, tuple[Any, ...], Decimal] | None) -> None:
        """Refuse `changes` corrections whose largest is `worst` = (rule, key, delta), if over a limit."""
        if self.max_changes is not None and changes > self.max_changes:
            raise RefusedError(
                f"refused: the plan changes {changes} rows, more than --max-changes {self.max_changes}; "
                "narrow it with --rule, --key or --limit, or raise the limit"
            )
        if self.max_abs_delta is not None and worst is not None and abs(worst[2]) > self.max_abs_delta:
            rule, key, delta = worst
            raise RefusedError(
                f"refused: rule {rule!r} would correct key {list(key)} by {delta}, "
                f"beyond --max-abs-delta {self.max_abs_delta}"
            )

    def check_plan(self, plan: Plan) -> None:
        corrections = [(r.rule, c.key, c.delta) for r in plan.rules for c in r.corrections]
        self.check(plan.changes, max(corrections, key=lambda c: abs(c[2]), default=None))


def production_reason(url: URL, pattern: str) -> str | None:
    """Why this database looks like production (None if it does not)."""
    if os.environ.get(PRODUCTION_ENV, "").lower() == "production":
        return f"${PRODUCTION_ENV} is 'production'"
    for part, value in (("host", url.host), ("database", url.database)):
        if value and re.search(pattern, value, re.IGNORECASE):
            return f"its {part} {value!r} matches the production pattern {pattern!r}"
    return None


def confirm_writes(url: URL, pattern: str, what: str, *, yes: bool, confirm: Callable[[str], bool] | None) -> None:
    """On a database that looks like production, writing needs `yes` or a confirmation."""
    reason = production_reason(url, pattern)
    if reason is None or yes:
        return
    question = f"{what} on a database that looks like production ({reason})"
    if confirm is None:
        raise UsageError(f"refusing to write without confirmation: {question}; pass --yes to confirm")
    if not confirm(question):
        raise RefusedError("not confirmed; nothing was written")
