"""`GET /metrics`: the sync rounds' metrics (as `watch --metrics-file` writes them) plus request counts and latencies.

Requests are labelled by route template (`/api/runs/{run_id}`), never by the
path as sent, so ids do not multiply the series and nothing a client sends
(a key, a token) becomes a label.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from trueup.report.metrics import Metrics

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class ServiceMetrics(Metrics):
    def __init__(self) -> None:
        super().__init__(registry=CollectorRegistry())
        labels = ["method", "route", "status"]
        self.requests = Counter("trueup_http_requests", "HTTP requests served.", labels, registry=self.registry)
        self.latency = Histogram(
            "trueup_http_request_duration_seconds",
            "Time to answer an HTTP request.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)


class RequestMetrics:
    """ASGI middleware timing every HTTP request into `metrics`."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self.metrics.observe(scope["method"], _route(scope), status, time.perf_counter() - started)


def _route(scope: dict[str, Any]) -> str:
    route = scope.get("route")
    return getattr(route, "path", None) or "unmatched"
