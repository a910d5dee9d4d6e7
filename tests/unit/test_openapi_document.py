"""The OpenAPI document says what the hand-written parsers and error classes do."""

from __future__ import annotations

from watcher.api import schema
from watcher.api.app import ROUTERS
from watcher.api.openapi import document
from watcher.config import LimitsSettings
from watcher.errors import WatcherError
from watcher.payments.request import KNOWN_FIELDS


def _codes(cls: type[WatcherError]) -> set[str]:
    return {cls.code}.union(*(_codes(sub) for sub in cls.__subclasses__()))


def test_the_create_body_documents_exactly_the_fields_the_parser_takes() -> None:
    assert set(schema.CREATE_PAYMENT["properties"]) == KNOWN_FIELDS
    assert schema.CREATE_PAYMENT["additionalProperties"] is False


def test_every_error_code_is_documented() -> None:
    assert set(schema.ERROR_CODES) == _codes(WatcherError)


def test_the_amount_range_is_the_servers_limits() -> None:
    routes = [route for router in ROUTERS for route in router.routes]
    limits = LimitsSettings(crypto_min="50", crypto_max="1000.5", card_min="60", card_max="900")
    amount = document(routes, limits)["components"]["schemas"]["CreatePayment"]["properties"]
    assert (amount["amount"]["minimum"], amount["amount"]["maximum"]) == (50, 1000.5)


def test_fastapi_s_own_validation_answers_are_not_documented() -> None:
    routes = [route for router in ROUTERS for route in router.routes]
    doc = document(routes, LimitsSettings())
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            assert "422" not in operation["responses"], (method, path)
    assert "HTTPValidationError" not in doc["components"]["schemas"]
