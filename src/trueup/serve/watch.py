"""Scheduled watch rounds inside the service: `trueup.reconcile.sync.Watcher`, every `every`, until stopped.

The rounds take the same per-rule locks as `trueup watch`, so a watch running
elsewhere and the service never run the same round twice: whichever comes
second skips. A failed round is logged and the schedule goes on.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from trueup.reconcile.sync import SyncOptions, Watcher
from trueup.report.metrics import Metrics
from trueup.report.sync import round_line
from trueup.serve.service import Service

log = logging.getLogger(__name__)


class Schedule:
    def __init__(self, service: Service, every: timedelta, metrics: Metrics, *, apply: bool):
        options = SyncOptions(apply=apply, triggered_by="schedule", backup_dir=service.backup_dir)
        self.watcher = Watcher(service.engine, service.config, None, options)
        self.every, self.metrics = every, metrics
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="trueup-watch", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join()

    def _loop(self) -> None:
        while not self.stop.is_set():
            try:
                results = self.watcher.round()
            except Exception:  # a round that fails must not end the schedule; the log has why
                log.exception("scheduled watch round failed")
            else:
                self.metrics.record(results)
                for result in results:
                    log.info("%s", round_line(result))
            self.stop.wait(self.every.total_seconds())
