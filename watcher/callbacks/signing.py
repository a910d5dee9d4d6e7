"""Callback signatures (docs/merchant-api.md#callbacks), shared by the delivery worker and the
merchant client.

X-Signature is the seed's: hex HMAC-SHA256, keyed with the UTF-8 bytes of the webhook secret,
over `{transactionId}:{externalRef}:{status}:{amount}:{timestamp}`. The amount is the canonical
string of docs/architecture.md#money (what JavaScript prints for the JSON number, so the seed's
Node.js verifier agrees) and the timestamp is the exact X-Timestamp string.

That string leaves event, eventId, sequence and metadata unsigned, so X-Body-Signature adds
hex HMAC-SHA256 over `{timestamp}.{raw body}`.

The formulas are written once, in the merchant client (kasa_watcher_client.signing, shipped
with the daemon): what the worker signs and what a shop verifies cannot drift apart.
"""

from __future__ import annotations

from kasa_watcher_client.signing import same_signature as matches
from kasa_watcher_client.signing import sign, sign_body, signature_string

SIGNATURE_HEADER = "X-Signature"
BODY_SIGNATURE_HEADER = "X-Body-Signature"
TIMESTAMP_HEADER = "X-Timestamp"
ATTEMPT_HEADER = "X-Attempt"
EVENT_ID_HEADER = "X-Event-Id"

__all__ = [
    "ATTEMPT_HEADER",
    "BODY_SIGNATURE_HEADER",
    "EVENT_ID_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "matches",
    "sign",
    "sign_body",
    "signature_string",
]
