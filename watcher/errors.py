"""Every error the merchant API can answer with, in one place.

    WatcherError
    ├── InvalidRequest        400 INVALID_REQUEST
    │   ├── InvalidAmount     400 INVALID_AMOUNT
    │   ├── InvalidEmail      400 INVALID_EMAIL
    │   └── InvalidPhone      400 INVALID_PHONE
    ├── Unauthorized          401 UNAUTHORIZED
    ├── LimitExceeded         403 LIMIT_EXCEEDED
    ├── NotFound              404 NOT_FOUND
    ├── DuplicateRef          409 DUPLICATE_REF
    ├── InvalidState          409 INVALID_STATE
    ├── PayloadTooLarge       413 INVALID_REQUEST
    ├── RateLimited           429 RATE_LIMITED (Retry-After)
    ├── ServerError           500 SERVER_ERROR
    ├── ProviderError         502 PROVIDER_ERROR
    └── SystemDisabled        503 SYSTEM_DISABLED
        └── DatabaseDown      503 SYSTEM_DISABLED (Retry-After): the database is unreachable

Each class's docstring is its default message. The API maps them to JSON in one handler.
"""

from __future__ import annotations


class WatcherError(Exception):
    """Something went wrong."""

    status = 500
    code = "SERVER_ERROR"

    def __init__(self, message: str | None = None, *, headers: dict[str, str] | None = None):
        self.message = message or (self.__doc__ or self.code).strip()
        self.headers = headers or {}
        super().__init__(self.message)


class InvalidRequest(WatcherError):
    """The request body is malformed."""

    status = 400
    code = "INVALID_REQUEST"


class InvalidAmount(InvalidRequest):
    """The amount is out of range or malformed."""

    code = "INVALID_AMOUNT"


class InvalidEmail(InvalidRequest):
    """The email address is not valid."""

    code = "INVALID_EMAIL"


class InvalidPhone(InvalidRequest):
    """The phone number is not valid E.164 (for example +905551234567)."""

    code = "INVALID_PHONE"


class Unauthorized(WatcherError):
    """Invalid or missing API key."""

    status = 401
    code = "UNAUTHORIZED"


class LimitExceeded(WatcherError):
    """A per-customer limit would be exceeded."""

    status = 403
    code = "LIMIT_EXCEEDED"


class NotFound(WatcherError):
    """No such transaction."""

    status = 404
    code = "NOT_FOUND"


class DuplicateRef(WatcherError):
    """externalRef already exists with another amount."""

    status = 409
    code = "DUPLICATE_REF"


class InvalidState(WatcherError):
    """The payment is not in a state that allows this."""

    status = 409
    code = "INVALID_STATE"


class PayloadTooLarge(WatcherError):
    """The request body is too large."""

    status = 413
    code = "INVALID_REQUEST"


class RateLimited(WatcherError):
    """Too many requests; retry after the number of seconds in Retry-After."""

    status = 429
    code = "RATE_LIMITED"


class ServerError(WatcherError):
    """Internal server error."""


class ProviderError(WatcherError):
    """A payment provider (rate source, chain node, card processor) is unavailable."""

    status = 502
    code = "PROVIDER_ERROR"


class SystemDisabled(WatcherError):
    """The payment system is temporarily disabled."""

    status = 503
    code = "SYSTEM_DISABLED"


class DatabaseDown(SystemDisabled):
    """The database cannot be reached right now; retry after the seconds in Retry-After."""

    RETRY_AFTER_S = 5

    def __init__(self, message: str | None = None):
        super().__init__(message, headers={"Retry-After": str(self.RETRY_AFTER_S)})
