"""The FastAPI application: merchant API, events, checkout page, health and metrics."""

from __future__ import annotations

from fastapi import FastAPI

from watcher.api import checkout, errors, events, health, openapi, payments, providers, sandbox
from watcher.api.auth import RecentKeys, WrongKeys
from watcher.api.bodylimit import BodyLimit
from watcher.api.keycache import KeyCache
from watcher.api.ratelimit import PageLimit, RateLimiter
from watcher.api.writewait import BoundedWrites
from watcher.metrics import HttpMetrics, Metrics
from watcher.services import Services

PUBLIC_PAGES = ("/pay/", "/sandbox/pay/")  # no API key: limited per client address
ROUTERS = tuple(m.router for m in (payments, events, checkout, health, providers, sandbox))


def create_app(services: Services, metrics: Metrics | None = None) -> FastAPI:
    app = openapi.DocumentedAPI(services.settings.limits, docs_url=None, redoc_url=None)
    app.state.services = services
    app.state.metrics = metrics
    limits = services.settings.api
    app.state.rate_limiter = RateLimiter(limits.rate_limit_per_minute)
    app.state.auth_failures = RateLimiter(limits.auth_failures_per_minute)
    app.state.new_keys = RateLimiter(limits.auth_failures_per_minute)
    app.state.recent_keys = RecentKeys()
    app.state.wrong_keys = WrongKeys()
    app.state.key_cache = KeyCache(limits.key_cache_s)
    errors.install(app)
    for router in ROUTERS:
        app.include_router(router)
    app.add_middleware(BodyLimit, max_bytes=limits.max_body_bytes)
    app.add_middleware(BoundedWrites)
    pages = RateLimiter(limits.pay_rate_limit_per_minute)
    app.add_middleware(PageLimit, limiter=pages, prefixes=PUBLIC_PAGES)
    if metrics is not None:
        app.add_middleware(HttpMetrics, metrics=metrics)
    return app
