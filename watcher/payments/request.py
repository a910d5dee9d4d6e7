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
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from watcher.callbacks.urls import validate_callback_url
from watcher.config import LimitsSettings
from watcher.errors import InvalidAmount, InvalidEmail, InvalidPhone, InvalidRequest
from watcher.money import has_at_most_places

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
        return None if value is None else str(value)


def parse_create(body: Any, limits: LimitsSettings) -> CreateRequest:
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    if "invoiceSite" in body:
        raise InvalidRequest(
            "invoiceSite (facade mode) is not supported: every provider sees the merchant's "
            "real identity"
        )
    unknown = sorted(set(body) - KNOWN_FIELDS)
    if unknown:
        raise InvalidRequest(f"unknown field(s): {', '.join(unknown)}")
    provider = _choice(body, "provider", PROVIDERS, default="crypto")
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
        callback_url=_callback_url(body.get("callbackUrl")),
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
    if not has_at_most_places(amount, 2):
        raise InvalidAmount("amount has more than 2 decimals")
    low, high = (
        (limits.card_min, limits.card_max)
        if provider in ("card", "bank", "wallet")
        else (limits.crypto_min, limits.crypto_max)
    )
    if not low <= amount <= high:
        raise InvalidAmount(f"amount must be between {low} and {high} TRY for {provider}")
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
    if not isinstance(value, str) or len(value) > 254 or not _EMAIL.match(value):
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
    if not _E164.match(compact):
        raise InvalidPhone("phone must be in E.164 form, for example +905551234567")
    return compact


def _callback_url(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > MAX_URL:
        raise InvalidRequest("callbackUrl must be an http(s) URL")
    return validate_callback_url(value)


def _url(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > MAX_URL or _has_control(value):
        raise InvalidRequest(f"{name} must be an http(s) URL")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidRequest(f"{name} must be an http(s) URL")
    return value


def _metadata(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidRequest("metadata must be a JSON object")
    encoded = json.dumps(value, default=str, ensure_ascii=False)
    if len(encoded.encode()) > MAX_METADATA_BYTES:
        raise InvalidRequest(f"metadata is larger than {MAX_METADATA_BYTES} bytes")
    user_id = value.get("userId")
    if user_id is not None and (isinstance(user_id, bool | dict | list) or len(str(user_id)) > 128):
        raise InvalidRequest("metadata.userId must be a string or number of at most 128 chars")
    return value
