"""verify_webhook (kasa_watcher_client) accepts what the worker signs, rejects everything else."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from kasa_watcher_client import (
    WebhookVerificationError,
    canonical_amount,
    sign,
    verify_webhook,
)

from watcher.callbacks.payload import callback_payload, encode
from watcher.callbacks.signing import sign_body
from watcher.clock import iso, parse_iso
from watcher.db.models import PaymentEvent
from watcher.money import canonical

SECRET = "whsec_gizli"
TS = "2026-11-22T05:09:47.123Z"
NOW_MS = parse_iso(TS)
NOW = NOW_MS / 1000  # the client takes epoch seconds


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
        created_ms=NOW_MS,
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


def test_header_names_are_case_insensitive() -> None:
    body, headers = signed()
    lower = {k.lower(): v for k, v in headers.items()}
    assert verify_webhook(body.decode(), lower, SECRET, now=NOW)["eventId"] == "evt_1"


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
        (lambda b, h: (b, h | {"X-Timestamp": iso(NOW_MS + 1)}), "X-Timestamp"),
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
    assert verify_webhook(body, headers, SECRET, tolerance_s=300, now=NOW + 300)
    for now in (NOW + 300.001, NOW - 300.001):
        with pytest.raises(WebhookVerificationError, match="more than 300 s"):
            verify_webhook(body, headers, SECRET, tolerance_s=300, now=now)


TEST_SECRET = "whsec_test_deneme"


def _by_hand(secret: str, livemode: bool | None) -> tuple[bytes, dict[str, str]]:
    """A callback as the daemon sends it, with or without `livemode`."""
    fields = {"transactionId": "txn_9", "externalRef": "ORD-9", "status": "completed"}
    payload: dict[str, object] = {"event": "payment.completed", **fields, "amount": 1000}
    payload |= {"timestamp": TS, "signature": sign(secret, *fields.values(), 1000, TS)}
    if livemode is not None:
        payload["livemode"] = livemode
    body = json.dumps(payload, separators=(",", ":")).encode()
    return body, {
        "X-Signature": str(payload["signature"]),
        "X-Timestamp": TS,
        "X-Body-Signature": sign_body(secret, TS, body),
    }


def test_test_callbacks_need_the_test_secret_and_say_livemode_false() -> None:
    body, headers = _by_hand(TEST_SECRET, livemode=False)
    event = verify_webhook(body, headers, SECRET, test_secret=TEST_SECRET, now=NOW)
    assert event["livemode"] is False
    assert verify_webhook(body, headers, "", test_secret=TEST_SECRET, now=NOW)["livemode"] is False
    with pytest.raises(WebhookVerificationError, match="X-Signature"):
        verify_webhook(body, headers, SECRET, now=NOW)  # a live-only receiver refuses it


def test_live_callbacks_say_livemode_true_also_when_an_older_daemon_left_it_out() -> None:
    body, headers = _by_hand(SECRET, livemode=True)
    assert verify_webhook(body, headers, SECRET, test_secret=TEST_SECRET, now=NOW)["livemode"]
    body, headers = _by_hand(SECRET, livemode=None)
    assert verify_webhook(body, headers, SECRET, now=NOW)["livemode"] is True
    with pytest.raises(WebhookVerificationError, match="X-Signature"):
        verify_webhook(body, headers, "", test_secret=TEST_SECRET, now=NOW)


def test_livemode_must_agree_with_the_secret_that_signed() -> None:
    body, headers = _by_hand(TEST_SECRET, livemode=True)
    with pytest.raises(WebhookVerificationError, match="livemode"):
        verify_webhook(body, headers, SECRET, test_secret=TEST_SECRET, now=NOW)
    with pytest.raises(ValueError, match="secret"):
        verify_webhook(body, headers, "", now=NOW)


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        ("1000.00", "1000"),
        ("281.60", "281.6"),
        ("1E+3", "1000"),
        ("0.000", "0"),
        ("5E-7", "0.0000005"),
    ],
)
def test_the_client_prints_amounts_as_the_daemon_signs_them(amount: str, text: str) -> None:
    assert canonical_amount(Decimal(amount)) == text == canonical(Decimal(amount))
