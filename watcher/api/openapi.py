"""The OpenAPI document served at /openapi.json and published as docs/openapi.json.

FastAPI writes the paths and parameters from the routes; the bodies, the answers and their
error codes come from watcher.api.schema. What FastAPI would add on its own and the API never
answers (422 validation errors: they are 400 INVALID_REQUEST here) is taken out.

`watcher openapi` prints it; docs/openapi.json is that output with default settings, and a
test holds the published file equal to what the app serves.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from decimal import Decimal
from importlib.metadata import version
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from watcher import jsonio
from watcher.api.schema import API_KEY_SCHEME, COMPONENTS, Json
from watcher.config import LimitsSettings
from watcher.money import json_number

TITLE = "kasa-watcher merchant API"
DESCRIPTION = (
    "Payments in TRY paid in USDT-TRC20 or through card, bank and wallet providers. "
    "Every /api request carries the merchant's API key in `x-api-key`. JSON in and out, "
    "UTF-8; amounts are JSON numbers, never strings. Errors answer "
    '`{"success": false, "error": {"code", "message"}}`. The guide: docs/merchant-api.md.'
)
TAGS = [
    {"name": "payments", "description": "Create a payment, read it, cancel it"},
    {"name": "events", "description": "Your payment events in order, for reconciliation"},
    {"name": "providers", "description": "Webhooks of the payment providers (not for shops)"},
]
_FASTAPI_ONLY = ("HTTPValidationError", "ValidationError")


class DocumentedAPI(FastAPI):
    """The FastAPI application, serving this module's document at /openapi.json (built on
    the first request for it)."""

    def __init__(self, limits: LimitsSettings, **kwargs: Any) -> None:
        # Served by our route, not FastAPI's: the amount bounds are Decimal, written as exact
        # JSON numbers by watcher.jsonio (the standard encoder would need a float).
        super().__init__(openapi_url=None, **kwargs)
        self._limits = limits
        self.add_route("/openapi.json", self._serve, include_in_schema=False)

    async def _serve(self, _request: Request) -> Response:
        return Response(jsonio.dumps(self.openapi()), media_type="application/json")

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            self.openapi_schema = document(self.routes, self._limits)
        return self.openapi_schema


def document(routes: Sequence[BaseRoute], limits: LimitsSettings) -> Json:
    """The document for these routes on a server with these [limits]."""
    doc = get_openapi(
        title=TITLE,
        version=version("kasa-watcher"),
        description=DESCRIPTION,
        routes=list(routes),
        tags=TAGS,
    )
    for operations in doc["paths"].values():
        for operation in operations.values():
            operation["responses"].pop("422", None)
            for parameter in operation.get("parameters", []):
                parameter["schema"] = _plain(parameter["schema"])
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for name in _FASTAPI_ONLY:
        schemas.pop(name, None)
    schemas.update(copy.deepcopy(COMPONENTS))
    amount = schemas["CreatePayment"]["properties"]["amount"]
    amount["minimum"] = _number(min(limits.crypto_min, limits.card_min))
    amount["maximum"] = _number(max(limits.crypto_max, limits.card_max))
    components["securitySchemes"] = {
        API_KEY_SCHEME: {
            "type": "apiKey",
            "in": "header",
            "name": "x-api-key",
            "description": "sk_live_… or sk_test_… (test payments), from `watcher merchant add`",
        }
    }
    return doc


def render(doc: Json) -> str:
    """The published form: indented, keys in the order written, a final newline."""
    return jsonio.dumps(doc, indent=2) + "\n"


def _plain(schema: Json) -> Json:
    """A parameter's schema without pydantic's title, and `str | None` as a string: a
    parameter is there or not, it cannot be null."""
    plain = {k: v for k, v in schema.items() if k not in ("title", "anyOf")}
    for branch in schema.get("anyOf", []):
        if branch.get("type") != "null":
            plain.update(branch)
    return plain


def _number(value: Decimal) -> Decimal:
    return json_number(value)
