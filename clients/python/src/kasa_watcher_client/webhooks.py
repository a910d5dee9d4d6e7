"""Verifying a callback before acting on it.

    event = verify_webhook(raw_body, request.headers, LIVE_SECRET, test_secret=TEST_SECRET)
    if event["livemode"]: ...   # a real payment; otherwise a test (sk_test_) one

Live callbacks are signed with the live webhook secret, test callbacks (payments made with an
`sk_test_` key) with the separate test secret (`whsec_test_…`). Give only the secrets this
receiver should accept: a production receiver given only the live secret rejects every test
callback. The payload says `livemode`; it must agree with the secret that signed it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from kasa_watcher_client import _json
from kasa_watcher_client.errors import WebhookVerificationError
from kasa_watcher_client.signing import same_signature, sign, sign_body

SIGNATURE_HEADER = "X-Signature"
BODY_SIGNATURE_HEADER = "X-Body-Signature"
TIMESTAMP_HEADER = "X-Timestamp"
DEFAULT_TOLERANCE_S = 300.0


def verify_webhook(
    body: bytes | str,
    headers: Mapping[str, str],
    secret: str,
    *,
    test_secret: str | None = None,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> dict[str, Any]:
    """The callback payload, once both signatures and the timestamp check out.

    `secret` is the live webhook secret (pass "" to accept test callbacks only), `test_secret`
    the test one. `now` is epoch seconds (default: the current time). Money fields come back as
    Decimal, whole ones too; `livemode` is always present. Raises
    WebhookVerificationError naming the check that failed.
    """
    if not secret and not test_secret:
        raise ValueError("give the live webhook secret, the test one, or both")
    raw = body.encode("utf-8") if isinstance(body, str) else bytes(body)
    lower = {key.lower(): value for key, value in headers.items()}
    signature = _header(lower, SIGNATURE_HEADER)
    body_signature = _header(lower, BODY_SIGNATURE_HEADER)
    timestamp = _header(lower, TIMESTAMP_HEADER)
    payload = _payload(raw)
    if payload.get("timestamp") != timestamp:
        raise WebhookVerificationError("X-Timestamp does not match the payload's timestamp")
    livemode = _signed_by(payload, signature, timestamp, secret, test_secret)
    key = secret if livemode else (test_secret or "")
    if not same_signature(sign_body(key, timestamp, raw), body_signature):
        raise WebhookVerificationError("X-Body-Signature does not match: the body was altered")
    if payload.setdefault("livemode", livemode) is not livemode:
        raise WebhookVerificationError("livemode does not match the secret that signed it")
    _check_fresh(timestamp, tolerance_s, time.time() if now is None else now)
    return payload


def _signed_by(
    payload: Mapping[str, Any], signature: str, timestamp: str, live: str, test: str | None
) -> bool:
    """True if the live secret made X-Signature, False if the test secret did."""
    candidates = [(True, live), (False, test or "")]
    for livemode, key in candidates:
        if key and same_signature(_expected(payload, key, timestamp), signature):
            return livemode
    which = "the live or the test secret" if live and test else "the secret given"
    raise WebhookVerificationError(
        f"X-Signature does not match {which}: another secret, or altered fields"
    )


def _expected(payload: Mapping[str, Any], key: str, timestamp: str) -> str:
    fields = [payload.get(name) for name in ("transactionId", "externalRef", "status")]
    amount = payload.get("amount")
    if not all(isinstance(field, str) for field in fields):
        raise WebhookVerificationError("the payload lacks the signed fields")
    if isinstance(amount, bool) or not isinstance(amount, int | Decimal):
        raise WebhookVerificationError("the payload's amount is not a number")
    try:
        return sign(key, str(fields[0]), str(fields[1]), str(fields[2]), amount, timestamp)
    except (ArithmeticError, UnicodeEncodeError) as exc:
        # Nothing kasa-watcher signs looks like this (an amount past the decimal context,
        # text with a lone surrogate): the sender gets a verdict, not a crash.
        raise WebhookVerificationError("the payload's signed fields are malformed") from exc


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name.lower())
    if not value:
        raise WebhookVerificationError(f"missing {name} header")
    return value


def _payload(raw: bytes) -> dict[str, Any]:
    try:
        payload = _json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise WebhookVerificationError("the body is not JSON") from exc
    if not isinstance(payload, dict):
        raise WebhookVerificationError("the body is not a JSON object")
    return payload


def _check_fresh(timestamp: str, tolerance_s: float, now: float) -> None:
    try:
        sent = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        raise WebhookVerificationError(f"X-Timestamp {timestamp!r} is not an ISO time") from None
    if sent.tzinfo is None:
        sent = sent.replace(tzinfo=UTC)
    if abs(now - sent.timestamp()) > tolerance_s:
        raise WebhookVerificationError(
            f"X-Timestamp {timestamp} is more than {tolerance_s:g} s from now (replay or skew)"
        )
