"""verify_webhook runs on a public endpoint: whatever a stranger posts, it answers with
WebhookVerificationError, never another exception (a 500 and a long traceback at the merchant)."""

from __future__ import annotations

import pytest
from kasa_watcher_client import WebhookVerificationError, verify_webhook

HEADERS = {"X-Signature": "0" * 64, "X-Timestamp": "T", "X-Body-Signature": "0" * 64}


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"timestamp": "T", "transactionId": "t", "externalRef": "r", "status": "s",'
        b' "amount": 1e1000000}',
        b'{"timestamp": "T", "transactionId": "\\ud800", "externalRef": "r", "status": "s",'
        b' "amount": 1}',
    ],
)
def test_hostile_bodies_are_verification_errors(body: bytes) -> None:
    with pytest.raises(WebhookVerificationError):
        verify_webhook(body, HEADERS, "whsec_x", now=0)
