"""The two callback signatures, as kasa-watcher computes them.

X-Signature (the seed's format): lowercase hex HMAC-SHA256, keyed with the UTF-8 bytes of the
webhook secret, over `{transactionId}:{externalRef}:{status}:{amount}:{timestamp}`, where
`amount` is the JSON number as JavaScript prints it (`1000`, `281.6`) and `timestamp` is the
X-Timestamp header.

X-Body-Signature: the same HMAC over `{timestamp}.{raw body}`; it also covers event, eventId,
sequence, livemode and metadata, which the seed's string leaves out.
"""

from __future__ import annotations

import hashlib
import hmac
from decimal import Decimal


def canonical_amount(amount: Decimal | int) -> str:
    """`Decimal("1000.00")` -> `"1000"`, `Decimal("281.60")` -> `"281.6"`: no exponent, no
    trailing zeros, what JavaScript prints for the same JSON number."""
    value = Decimal(amount)
    return "0" if value == 0 else format(value.normalize(), "f")


def signature_string(
    transaction_id: str, external_ref: str, status: str, amount: Decimal | int, timestamp: str
) -> str:
    return f"{transaction_id}:{external_ref}:{status}:{canonical_amount(amount)}:{timestamp}"


def sign(
    secret: str,
    transaction_id: str,
    external_ref: str,
    status: str,
    amount: Decimal | int,
    timestamp: str,
) -> str:
    """The X-Signature value."""
    text = signature_string(transaction_id, external_ref, status, amount, timestamp)
    return _hmac(secret, text.encode("utf-8"))


def sign_body(secret: str, timestamp: str, body: bytes) -> str:
    """The X-Body-Signature value."""
    return _hmac(secret, timestamp.encode("utf-8") + b"." + body)


def same_signature(expected: str, given: str) -> bool:
    """Constant-time comparison; hex case and surrounding spaces do not matter."""
    return hmac.compare_digest(expected.encode("ascii"), given.strip().lower().encode("utf-8"))


def _hmac(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()
