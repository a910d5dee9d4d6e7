"""The callback payload (docs/merchant-api.md#callbacks), built from the event row's snapshot
of the payment.

Every attempt of a callback carries the same facts (the snapshot taken when the event was
recorded); only `timestamp` (the signing time of this attempt) and `signature` change.
Amounts go out as exact JSON numbers (watcher.jsonio), never through float.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from watcher import jsonio
from watcher.callbacks.signing import sign
from watcher.clock import iso
from watcher.db.models import PaymentEvent
from watcher.money import json_number

# Money fields of the snapshot: stored as strings or numbers, always sent as JSON numbers.
_CRYPTO_AMOUNTS = ("amountUsdt", "receivedUsdt", "rate", "lateUsdt")
_CRYPTO_FIELDS = ("txids", "amountUsdt", "receivedUsdt", "rate", "network", "address", "lateUsdt")


def _number(value: Any) -> Decimal:
    return json_number(Decimal(str(value)))


def event_view(event: PaymentEvent) -> dict[str, Any]:
    """The event as merchants see it (GET /api/events and, signed, the callback body)."""
    data = jsonio.loads(event.data_json or "{}")
    view: dict[str, Any] = {
        "event": event.type,
        "eventId": event.event_id,
        "sequence": event.sequence,
        "transactionId": data["transactionId"],
        "externalRef": data["externalRef"],
        "status": event.status,
        "amount": _number(data["amount"]),
        "currency": data.get("currency", "TRY"),
        "fullName": data.get("fullName", ""),
        "occurredAt": iso(event.created_ms),
        "metadata": data.get("metadata") or {},
    }
    crypto = data.get("crypto")
    if isinstance(crypto, dict):
        view["crypto"] = _crypto(crypto)
    if "details" in data:
        view["details"] = data["details"]
    return view


def _crypto(crypto: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in _CRYPTO_FIELDS:
        if key not in crypto:
            continue
        value = crypto[key]
        out[key] = _number(value) if key in _CRYPTO_AMOUNTS and value is not None else value
    out.setdefault("txids", [])
    return out


def callback_payload(event: PaymentEvent, secret: str, timestamp: str) -> dict[str, Any]:
    """The signed payload of one attempt; `timestamp` is that attempt's X-Timestamp string."""
    view = event_view(event)
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
