"""The two errors this package raises.

Exception
├── WatcherAPIError            the payment API answered with an error (code, HTTP status)
└── WebhookVerificationError   a callback is not authentic or not fresh: do not act on it
"""

from __future__ import annotations


class WatcherAPIError(Exception):
    """The payment API answered with an error."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class WebhookVerificationError(Exception):
    """The callback is not authentic or not fresh; answer it with an error, do not act on it."""
