"""Prometheus metrics of sync rounds (loaded only by `watch --metrics-file` and `serve`: prometheus_client)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest, write_to_textfile

from trueup.reconcile.sync import RoundResult


class Metrics:
    """Prometheus text-format metrics: for node-exporter's textfile collector, rewritten atomically after
    each round when `path` is given, or served by `trueup serve` at /metrics (`text()`)."""

    def __init__(self, path: Path | None = None, registry: CollectorRegistry | None = None):
        self.path = path
        self.registry = registry or CollectorRegistry()
        labels = ["rule"]
        self.checked = Gauge("trueup_items_checked", "Items checked by the last round.", labels, registry=self.registry)
        self.drifted = Gauge(
            "trueup_items_drifted", "Drifted items found by the last round.", labels, registry=self.registry
        )
        self.recurring = Gauge(
            "trueup_items_recurring", "Items drifting again after a repair.", labels, registry=self.registry
        )
        self.corrected = Counter(
            "trueup_items_corrected", "Items corrected since start.", labels, registry=self.registry
        )
        self.duration = Gauge(
            "trueup_round_duration_seconds", "Duration of the last round.", labels, registry=self.registry
        )
        self.success = Gauge(
            "trueup_last_success_timestamp_seconds", "When a round last completed.", labels, registry=self.registry
        )

    def record(self, results: list[RoundResult]) -> None:
        for result in results:
            if result.status in ("skipped", "queued"):
                continue
            rule = result.rule
            self.corrected.labels(rule).inc(result.corrected)
            if result.kind == "keys":  # a round of queued keys after the rule's round: not the rule's state
                continue
            self.checked.labels(rule).set(result.checked)
            self.drifted.labels(rule).set(result.drifted)
            self.recurring.labels(rule).set(len(result.recurring))
            self.duration.labels(rule).set(result.duration)
            self.success.labels(rule).set(datetime.now().timestamp())
        if self.path is not None:
            write_to_textfile(str(self.path), self.registry)

    def text(self) -> bytes:
        return generate_latest(self.registry)
