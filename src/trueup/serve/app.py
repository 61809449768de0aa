"""The FastAPI application: routers, error shapes, limits, metrics, CORS, the watch schedule.

    app = create_app(Service(load_config("trueup.toml")))
    uvicorn.run(app, host="127.0.0.1", port=8337)

OpenAPI is at /api/openapi.json, interactive docs at /api/docs (Swagger UI
from the `swagger-ui-bundle` package, no CDN), the dashboard at /.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from fastapi import Depends, FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import PlainTextResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

from trueup import __version__
from trueup.serve import api, cost_api, errors, guard_api, ledger_api, pages
from trueup.serve.limits import BodyLimit
from trueup.serve.metrics import RequestMetrics, ServiceMetrics
from trueup.serve.service import Service
from trueup.serve.watch import Schedule


def create_app(service: Service, *, watch: timedelta | None = None, watch_apply: bool = False) -> FastAPI:
    settings = service.config.serve
    metrics = ServiceMetrics()
    schedule = Schedule(service, watch, metrics, apply=watch_apply) if watch else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if schedule:
            schedule.start()
        try:
            yield
        finally:
            if schedule:
                schedule.close()
            service.close()

    app = FastAPI(
        title="trueup",
        version=__version__,
        description="Measure, repair and keep true the stock figures of a SQL database; ledger and cost of goods.",
        openapi_url="/api/openapi.json",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.openapi = lambda: openapi(app)  # type: ignore[method-assign]
    app.state.service = service
    app.state.metrics = metrics
    app.state.watch_every = watch
    errors.install(app)
    app.include_router(api.router)
    app.include_router(ledger_api.router)
    app.include_router(cost_api.router)
    app.include_router(guard_api.router)
    app.include_router(pages.router)
    pages.mount(app)

    app.mount("/api/docs-assets", StaticFiles(directory=swagger_ui_path), name="docs-assets")

    @app.get("/api/docs", include_in_schema=False)
    def docs() -> Response:
        return get_swagger_ui_html(
            openapi_url="/api/openapi.json",
            title="trueup API",
            swagger_js_url="/api/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/api/docs-assets/swagger-ui.css",
            swagger_favicon_url="/api/docs-assets/favicon-32x32.png",
        )

    @app.get(
        "/metrics",
        summary="Prometheus text: sync rounds, request counts and latencies",
        tags=["metrics"],
        response_class=PlainTextResponse,
        responses=errors.failures(*errors.TOKEN),
        dependencies=[Depends(api.known_query)],
    )
    def metrics_text(request: Request, token: api.Reader) -> Response:
        return Response(metrics.text(), media_type="text/plain; version=0.0.4; charset=utf-8")

    app.add_middleware(
        BodyLimit, body_bytes=settings.max_body_kb * 1024, upload_bytes=settings.max_upload_mb * 1024 * 1024
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
        )
    app.add_middleware(RequestMetrics, metrics=metrics)
    return app


def openapi(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document, made once: FastAPI's, as `errors.published` corrects it."""
    if app.openapi_schema is None:
        app.openapi_schema = errors.published(FastAPI.openapi(app))
    return app.openapi_schema
