"""The FastAPI application: merchant API, checkout page, events, health and metrics."""

from __future__ import annotations

import importlib
import importlib.util

from fastapi import FastAPI

from watcher.api import errors, payments
from watcher.api.bodylimit import BodyLimit
from watcher.api.ratelimit import RateLimiter
from watcher.metrics import HttpMetrics, Metrics
from watcher.services import Services

# Routers owned by other parts of the package; each module exposes `router`.
_ROUTERS = ("watcher.api.events", "watcher.api.checkout", "watcher.api.health")


def create_app(services: Services, metrics: Metrics | None = None) -> FastAPI:
    app = FastAPI(
        title="kasa-watcher",
        docs_url=None,
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.services = services
    app.state.metrics = metrics
    app.state.rate_limiter = RateLimiter(services.settings.api.rate_limit_per_minute)
    errors.install(app)
    app.include_router(payments.router)
    for name in _ROUTERS:
        if importlib.util.find_spec(name) is not None:  # INTEGRATION: explicit once all land
            app.include_router(importlib.import_module(name).router)
    app.add_middleware(BodyLimit, max_bytes=services.settings.api.max_body_bytes)
    if metrics is not None:
        app.add_middleware(HttpMetrics, metrics=metrics)
    return app
