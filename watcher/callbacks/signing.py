"""Callback signatures (docs/merchant-api.md#callbacks), shared by the delivery worker and
the merchant SDK.

X-Signature is the seed's: hex HMAC-SHA256, keyed with the UTF-8 bytes of the webhook secret,
over `{transactionId}:{externalRef}:{status}:{amount}:{timestamp}`. The amount is the canonical
string of docs/architecture.md#money (what JavaScript prints for the JSON number, so the seed's
Node.js verifier agrees) and the timestamp is the exact X-Timestamp string.

That string leaves event, eventId, sequence and metadata unsigned, so X-Body-Signature adds
hex HMAC-SHA256 over `{timestamp}.{raw body}`.
"""

from __future__ import annotations

import hashlib
import hmac
from decimal import Decimal

from watcher.money import canonical

SIGNATURE_HEADER = "X-Signature"
BODY_SIGNATURE_HEADER = "X-Body-Signature"
TIMESTAMP_HEADER = "X-Timestamp"
ATTEMPT_HEADER = "X-Attempt"
EVENT_ID_HEADER = "X-Event-Id"


def signature_string(
    transaction_id: str, external_ref: str, status: str, amount: Decimal | int, timestamp: str
) -> str:
    return f"{transaction_id}:{external_ref}:{status}:{canonical(amount)}:{timestamp}"


def _hmac_hex(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def sign(
    secret: str,
    transaction_id: str,
    external_ref: str,
    status: str,
    amount: Decimal | int,
    timestamp: str,
) -> str:
    """The X-Signature value (lowercase hex)."""
    text = signature_string(transaction_id, external_ref, status, amount, timestamp)
    return _hmac_hex(secret, text.encode("utf-8"))


def sign_body(secret: str, timestamp: str, body: bytes) -> str:
    """The X-Body-Signature value: HMAC over `{timestamp}.{raw body}`."""
    return _hmac_hex(secret, timestamp.encode("utf-8") + b"." + body)


def matches(expected: str, given: str) -> bool:
    """Constant-time comparison of two hex signatures (case-insensitive hex)."""
    return hmac.compare_digest(expected.encode("ascii"), given.strip().lower().encode("utf-8"))
