"""verify_webhook (the merchant SDK) accepts what the worker signs and rejects everything else."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from watcher.callbacks.payload import callback_payload, encode
from watcher.callbacks.signing import sign_body
from watcher.client import WatcherClient, WebhookVerificationError, verify_webhook
from watcher.clock import iso, parse_iso
from watcher.db.models import PaymentEvent

SECRET = "whsec_gizli"
TS = "2026-11-22T05:09:47.123Z"
NOW = parse_iso(TS)


def signed(
    amount: str = "1000", ref: str = "ORD-Ğ", secret: str = SECRET, ts: str = TS
) -> tuple[bytes, dict[str, str]]:
    data = {
        "transactionId": "txn_1",
        "externalRef": ref,
        "status": "completed",
        "amount": amount,
        "currency": "TRY",
        "fullName": "Şule Işık",
        "metadata": {"userId": "1"},
    }
    event = PaymentEvent(
        event_id="evt_1",
        payment_id="txn_1",
        merchant_id=1,
        type="payment.completed",
        sequence=1,
        status="completed",
        created_ms=NOW,
        data_json=json.dumps(data),
    )
    payload = callback_payload(event, secret, ts)
    body = encode(payload)
    headers = {
        "X-Signature": payload["signature"],
        "X-Timestamp": ts,
        "X-Body-Signature": sign_body(secret, ts, body),
        "X-Attempt": "1",
    }
    return body, headers


@pytest.mark.parametrize("amount", ["1000", "281.6", "0.5", "500000"])
def test_authentic_callbacks_verify(amount: str) -> None:
    body, headers = signed(amount)
    payload = verify_webhook(body, headers, SECRET, now=NOW)
    assert payload["amount"] == Decimal(amount) and payload["externalRef"] == "ORD-Ğ"


def test_header_names_are_case_insensitive_and_client_method_uses_its_secret() -> None:
    body, headers = signed()
    lower = {k.lower(): v for k, v in headers.items()}
    assert verify_webhook(body.decode(), lower, SECRET, now=NOW)["eventId"] == "evt_1"
    client = WatcherClient("http://127.0.0.1:1", "sk_test_x", SECRET)
    assert client.verify_webhook(body, headers, now=NOW)["transactionId"] == "txn_1"


def _tamper(body: bytes, old: str, new: str) -> bytes:
    assert old.encode() in body
    return body.replace(old.encode(), new.encode())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda b, h: (_tamper(b, '"amount":1000', '"amount":1001'), h), "X-Signature"),
        (lambda b, h: (_tamper(b, '"userId":"1"', '"userId":"2"'), h), "X-Body-Signature"),
        (lambda b, h: (b, h | {"X-Signature": "0" * 64}), "X-Signature"),
        (lambda b, h: (b, {k: v for k, v in h.items() if k != "X-Body-Signature"}), "missing"),
        (lambda b, h: (b, h | {"X-Timestamp": iso(NOW + 1)}), "X-Timestamp"),
        (lambda b, h: (b"[1]", h), "JSON object"),
        (lambda b, h: (b"{", h), "not JSON"),
    ],
)
def test_altered_or_incomplete_callbacks_are_rejected(change: object, message: str) -> None:
    body, headers = signed()
    body, headers = change(body, headers)  # type: ignore[operator]
    with pytest.raises(WebhookVerificationError, match=message):
        verify_webhook(body, headers, SECRET, now=NOW)


def test_another_secret_is_rejected() -> None:
    body, headers = signed(secret="whsec_other")
    with pytest.raises(WebhookVerificationError, match="X-Signature"):
        verify_webhook(body, headers, SECRET, now=NOW)


def test_timestamps_outside_the_tolerance_are_rejected_both_ways() -> None:
    body, headers = signed()
    assert verify_webhook(body, headers, SECRET, tolerance_s=300, now=NOW + 300_000)
    for now in (NOW + 300_001, NOW - 300_001):
        with pytest.raises(WebhookVerificationError, match="more than 300s"):
            verify_webhook(body, headers, SECRET, tolerance_s=300, now=now)
