"""The callback payload (docs/merchant-api.md#callbacks), built from the event row's copy of
the payment's JSON.

Every attempt of a callback carries the same facts (the payment's JSON as the event stored
it, watcher.payments.view); only `timestamp` (the signing time of this attempt) and
`signature` change. Amounts go out as exact JSON numbers (watcher.jsonio), never through float.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Protocol

from watcher import jsonio
from watcher.callbacks.signing import sign
from watcher.clock import iso
from watcher.money import json_number
from watcher.payments.view import exact_numbers, is_money


class EventRow(Protocol):
    """An event as stored: a PaymentEvent, or the delivery worker's copy of its columns."""

    @property
    def event_id(self) -> str: ...
    @property
    def payment_id(self) -> str: ...
    @property
    def merchant_id(self) -> int: ...
    @property
    def type(self) -> str: ...
    @property
    def sequence(self) -> int: ...
    @property
    def status(self) -> str: ...
    @property
    def created_ms(self) -> int: ...
    @property
    def data_json(self) -> str: ...


def event_view(event: EventRow, *, livemode: bool | None = None) -> dict[str, Any]:
    """The event as merchants see it (GET /api/events and, signed, the callback body): the
    payment's JSON as the event stored it, under the event's name, id and sequence.

    `livemode`: the payment's mode, which wins over the stored copy (events stored before
    the payment's JSON carried it have none).
    """
    data = jsonio.loads(event.data_json or "{}")
    details = data.pop("details", None)
    if livemode is not None:
        data["livemode"] = livemode
    view: dict[str, Any] = {
        "event": event.type,
        "eventId": event.event_id,
        "sequence": event.sequence,
        "transactionId": data.pop("transactionId"),
        "externalRef": data.pop("externalRef"),
        "status": event.status,
        "amount": _exact("amount", data.pop("amount")),
        "currency": data.pop("currency", "TRY"),
        "fullName": data.pop("fullName", ""),
        "occurredAt": iso(event.created_ms),
        "metadata": data.pop("metadata", None) or {},
    }
    data.pop("status", None)
    for key, value in data.items():
        view[key] = _exact(key, value)
    if details is not None:
        view["details"] = details
    return view


def _exact(key: str, value: Any) -> Any:
    """Money as exact JSON numbers, also in a method's block; metadata stays as sent."""
    if key == "metadata" or value is None:
        return value
    if isinstance(value, dict):
        return exact_numbers(value)
    return json_number(Decimal(str(value))) if is_money(key) else value


def callback_payload(
    event: EventRow, secret: str, timestamp: str, *, livemode: bool | None = None
) -> dict[str, Any]:
    """The signed payload of one attempt; `timestamp` is that attempt's X-Timestamp string."""
    view = event_view(event, livemode=livemode)
    fields = (view["transactionId"], view["externalRef"], view["status"], view["amount"])
    signature = sign(secret, *fields, timestamp)
    payload: dict[str, Any] = {}
    for key, value in view.items():
        payload[key] = value
        if key == "fullName":
            payload["timestamp"] = timestamp
            payload["signature"] = signature
    return payload


def encode(payload: dict[str, Any]) -> bytes:
    """The raw body: compact UTF-8 JSON with exact numbers."""
    return jsonio.dumps(payload).encode("utf-8")
