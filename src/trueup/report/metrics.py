"""Prometheus metrics of sync rounds (imported only by `watch --metrics-file`: it loads prometheus_client)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, write_to_textfile

from trueup.reconcile.sync import RoundResult


class Metrics:
    """Prometheus text-format metrics for node-exporter's textfile collector, rewritten atomically."""

    def __init__(self, path: Path):
        self.path = path
        self.registry = CollectorRegistry()
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
        write_to_textfile(str(self.path), self.registry)
