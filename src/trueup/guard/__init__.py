"""Guard: stop drift at its source with database triggers generated from a rule.

`capture` installs AFTER INSERT/UPDATE/DELETE row triggers on a rule's recorded
table, `table` sources and the tables a `from` source joins (their keys derived
or looked up) that queue each touched key in `trueup_dirty`, so a
sync round checks exactly those keys (see `trueup.guard.ddl` for what marks a
key, `trueup.guard.runs` for installs as undoable runs). On PostgreSQL, `alarm`
and `enforce` check each touched key once at commit (`trueup.guard.commit`):
alarm records a violation in `trueup_violations`, enforce fails with SQLSTATE TU001.
"""

from trueup.guard.runs import Installed, Outcome, changed_since, install, plan, remove, status
from trueup.guard.violations import listed as violations

__all__ = ["Installed", "Outcome", "changed_since", "install", "plan", "remove", "status", "violations"]
