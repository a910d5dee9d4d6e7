"""Validation of POST /api/payment/create bodies into a CreateRequest.

Hand-written rather than a pydantic model so that each field maps to the documented error
code (INVALID_AMOUNT, INVALID_EMAIL, INVALID_PHONE, else INVALID_REQUEST) with a message that
names the field, and so that amounts are only ever Decimal (the body is parsed with
parse_float=Decimal; a string or float amount is refused).
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Collection
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from watcher.callbacks.urls import validate_callback_url
from watcher.config import LimitsSettings
from watcher.errors import InvalidAmount, InvalidEmail, InvalidPhone, InvalidRequest
from watcher.money import canonical, has_at_most_places

PROVIDERS = ("crypto", "card", "bank", "wallet")
KNOWN_FIELDS = frozenset(
    {
        "amount",
        "currency",
        "fullName",
        "email",
        "phone",
        "externalRef",
        "callbackUrl",
        "returnUrl",
        "cancelUrl",
        "metadata",
        "provider",
    }
)
MAX_METADATA_BYTES = 4096
MAX_URL = 2048
# Nesting of the whole body (metadata starts at level 2). Deeper JSON is refused before
# anything recurses over it.
MAX_DEPTH = 10
# Metadata numbers are stored and sent back as JSON numbers; beyond these bounds they could
# not be (an exponent like 1e1000000 overflows, 1e5000 expands to 5000 digits, more than 15
# significant digits do not survive a JSON parser that reads doubles). Long ids go as strings.
MAX_NUMBER_DIGITS = 15
MAX_NUMBER_EXPONENT = 100
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_EMAIL = re.compile(rf"^[A-Za-z0-9.!#$%&'*+/=?^_`{{|}}~-]+@{_LABEL}(?:\.{_LABEL})+$")
_E164 = re.compile(r"^\+[1-9][0-9]{7,14}$")


@dataclass(frozen=True)
class CreateRequest:
    amount: Decimal
    provider: str
    full_name: str
    external_ref: str
    currency: str = "TRY"
    email: str | None = None
    phone: str | None = None
    callback_url: str | None = None
    return_url: str | None = None
    cancel_url: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def user_id(self) -> str | None:
        value = self.metadata.get("userId")
        if value is None:
            return None
        # 1000, 1000.0 and 1e3 are one customer, as they are one JSON number.
        return canonical(value) if isinstance(value, Decimal) else str(value)


def not_enabled(provider: str) -> InvalidRequest:
    return InvalidRequest(f"provider {provider!r} is not enabled on this server")


def parse_create(
    body: Any,
    limits: LimitsSettings,
    *,
    allow_private_urls: bool = False,
    enabled: Collection[str] | None = None,
) -> CreateRequest:
    """The request, checked in the order a client can act on: the body's shape, whether the
    payment method is on (`enabled`; None: all), then the fields."""
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    _check_tree(body)
    if "invoiceSite" in body:
        raise InvalidRequest(
            "invoiceSite (facade mode) is not supported: every provider sees the merchant's "
            "real identity"
        )
    unknown = sorted(set(body) - KNOWN_FIELDS)
    if unknown:
        raise InvalidRequest(f"unknown field(s): {', '.join(unknown)}")
    provider = _choice(body, "provider", PROVIDERS, default="crypto")
    if enabled is not None and provider not in enabled:
        raise not_enabled(provider)
    currency = _choice(body, "currency", ("TRY",), default="TRY")
    email = _email(body.get("email"), required=provider == "card")
    phone = _phone(body.get("phone"), required=provider == "card")
    return CreateRequest(
        amount=_amount(body.get("amount"), provider, limits),
        provider=provider,
        currency=currency,
        full_name=_text(body, "fullName", 200, required=True) or "",
        external_ref=_external_ref(body.get("externalRef")),
        email=email,
        phone=phone,
        callback_url=_callback_url(body.get("callbackUrl"), allow_private_urls),
        return_url=_url(body, "returnUrl"),
        cancel_url=_url(body, "cancelUrl"),
        metadata=_metadata(body.get("metadata")),
    )


def _choice(body: dict[str, Any], name: str, allowed: tuple[str, ...], default: str) -> str:
    value = body.get(name, default)
    if value is None:
        return default
    if not isinstance(value, str) or value not in allowed:
        raise InvalidRequest(f"{name} must be one of: {', '.join(allowed)}")
    return value


def _amount(value: Any, provider: str, limits: LimitsSettings) -> Decimal:
    if value is None:
        raise InvalidAmount("amount is required")
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise InvalidAmount("amount must be a JSON number, for example 500.00")
    amount = Decimal(value)
    if not amount.is_finite() or amount <= 0:
        raise InvalidAmount("amount must be a positive number")
    low, high = (
        (limits.card_min, limits.card_max)
        if provider in ("card", "bank", "wallet")
        else (limits.crypto_min, limits.crypto_max)
    )
    # The range first: comparing is exact for any exponent, while counting decimals normalizes,
    # which overflows the decimal context for amounts like 1e1000000.
    if not low <= amount <= high:
        raise InvalidAmount(f"amount must be between {low} and {high} TRY for {provider}")
    if not has_at_most_places(amount, 2):
        raise InvalidAmount("amount has more than 2 decimals")
    return amount


def _has_control(text: str) -> bool:
    return any(unicodedata.category(ch) in ("Cc", "Cf") for ch in text)


def _text(body: dict[str, Any], name: str, max_len: int, *, required: bool) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise InvalidRequest(f"{name} is required")
        return None
    if not isinstance(value, str):
        raise InvalidRequest(f"{name} must be a string")
    value = value.strip()
    if required and not value:
        raise InvalidRequest(f"{name} must not be empty")
    if len(value) > max_len:
        raise InvalidRequest(f"{name} is longer than {max_len} characters")
    if _has_control(value):
        raise InvalidRequest(f"{name} contains control characters")
    return value


def _external_ref(value: Any) -> str:
    if value is None:
        raise InvalidRequest("externalRef is required")
    if not isinstance(value, str):
        raise InvalidRequest("externalRef must be a string")
    if not 1 <= len(value) <= 64:
        raise InvalidRequest("externalRef must be 1 to 64 characters")
    if ":" in value or _has_control(value) or value != value.strip():
        raise InvalidRequest(
            "externalRef must not contain ':', control characters or surrounding spaces"
        )
    return value


def _email(value: Any, *, required: bool) -> str | None:
    if value is None or value == "":
        if required:
            raise InvalidEmail("email is required for card payments")
        return None
    if not isinstance(value, str) or len(value) > 254 or not _EMAIL.fullmatch(value):
        raise InvalidEmail("email is not a valid address")
    return value.lower()


def _phone(value: Any, *, required: bool) -> str | None:
    if value is None or value == "":
        if required:
            raise InvalidPhone("phone is required for card payments")
        return None
    if not isinstance(value, str):
        raise InvalidPhone("phone must be a string in E.164 form, for example +905551234567")
    compact = re.sub(r"[\s\-()]", "", value)
    if not _E164.fullmatch(compact):
        raise InvalidPhone("phone must be in E.164 form, for example +905551234567")
    return compact


def _callback_url(value: Any, allow_private: bool) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > MAX_URL:
        raise InvalidRequest("callbackUrl must be an http(s) URL")
    return validate_callback_url(value, allow_private=allow_private)


def _url(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > MAX_URL or _has_control(value):
        raise InvalidRequest(f"{name} must be an http(s) URL")
    try:
        parts = urlsplit(value)
    except ValueError as exc:  # for example an unclosed IPv6 bracket
        raise InvalidRequest(f"{name} is not a valid URL") from exc
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidRequest(f"{name} must be an http(s) URL")
    return value


def _metadata(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidRequest("metadata must be a JSON object")
    _check_metadata(value)
    encoded = json.dumps(value, default=str, ensure_ascii=False)
    if len(encoded.encode()) > MAX_METADATA_BYTES:
        raise InvalidRequest(f"metadata is larger than {MAX_METADATA_BYTES} bytes")
    user_id = value.get("userId")
    if user_id is not None and (isinstance(user_id, bool | dict | list) or len(str(user_id)) > 128):
        raise InvalidRequest("metadata.userId must be a string or number of at most 128 chars")
    return value


def _check_tree(body: dict[str, Any]) -> None:
    """Bounded nesting, and only text that is valid Unicode (JSON's \\ud800 escapes decode to
    lone surrogates, which no database or UTF-8 encoder accepts)."""
    stack: list[tuple[Any, int]] = [(body, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > MAX_DEPTH:
                raise InvalidRequest(f"the request body is nested deeper than {MAX_DEPTH} levels")
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                if isinstance(key, str):
                    _check_unicode(key)
                stack.append((item, depth + 1))
        elif isinstance(value, str):
            _check_unicode(value)


def _check_unicode(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidRequest(
            "the request body contains an unpaired UTF-16 surrogate (\\ud800-\\udfff)"
        ) from exc


def _check_metadata(value: Any) -> None:
    """Metadata goes back verbatim in the status API and every callback: no NUL characters
    (text columns and our JSON writer reserve them) and numbers that stay the same number."""
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, sub in item.items():
                if "\x00" in key:
                    raise InvalidRequest("metadata keys must not contain NUL characters")
                stack.append(sub)
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            if "\x00" in item:
                raise InvalidRequest("metadata values must not contain NUL characters")
        elif isinstance(item, int | Decimal) and not isinstance(item, bool):
            if not _plain_number(Decimal(item)):
                raise InvalidRequest(
                    f"metadata numbers must have at most {MAX_NUMBER_DIGITS} significant digits "
                    f"and a magnitude within 1e±{MAX_NUMBER_EXPONENT}; send longer ones as strings"
                )


def _plain_number(d: Decimal) -> bool:
    if d.is_zero():
        return True
    digits = "".join(map(str, d.as_tuple().digits)).rstrip("0")
    return len(digits) <= MAX_NUMBER_DIGITS and abs(d.adjusted()) <= MAX_NUMBER_EXPONENT
