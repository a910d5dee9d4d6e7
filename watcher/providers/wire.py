"""JSON over HTTP with a provider, for the adapters that speak it directly (AcidPanel,
Kazawallet): one way to post, to read the answer, and to quote what the provider said."""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import httpx

from watcher import jsonio
from watcher.errors import ProviderError
from watcher.providers.base import WebhookRejected

MAX_SAID = 300
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


async def post_json(
    client: httpx.AsyncClient,
    provider: str,
    path: str,
    body: Mapping[str, Any],
    headers: Mapping[str, str],
) -> tuple[int, dict[str, Any]]:
    """POST `body` (Decimals as JSON numbers); the HTTP status and the JSON object answered.

    ProviderError when the provider cannot be reached or does not answer with a JSON object.
    """
    sent = {"Content-Type": "application/json", "Accept": "application/json", **headers}
    try:
        resp = await client.post(path, content=jsonio.dumps(dict(body)).encode(), headers=sent)
    except httpx.HTTPError as exc:
        raise ProviderError(f"{provider} could not be reached ({type(exc).__name__})") from None
    try:
        data = jsonio.loads(resp.content, unique_keys=False)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise ProviderError(f"{provider} answered HTTP {resp.status_code} without a JSON object")
    return resp.status_code, data


def said(payload: Mapping[str, Any]) -> str:
    """What the provider said in an error answer: `error`, `message` and `messages` (a list
    of validation messages), in that order, cleaned of control characters and cut short."""
    parts: list[str] = []
    for key in ("error", "message"):
        value = payload.get(key)
        if isinstance(value, str) and value.strip():
            parts.append(value.strip())
    messages = payload.get("messages")
    if isinstance(messages, list):
        parts.extend(str(m).strip() for m in messages if str(m).strip())
    elif isinstance(messages, dict):  # {"field": ["…"]}, as some frameworks answer
        for value in messages.values():
            items = value if isinstance(value, list) else [value]
            parts.extend(str(m).strip() for m in items if str(m).strip())
    return clean(": ".join(parts[:2]) + ("; " + "; ".join(parts[2:]) if parts[2:] else ""))


def clean(text: str) -> str:
    text = _CONTROL.sub(" ", text).strip()
    return text if len(text) <= MAX_SAID else text[: MAX_SAID - 1] + "…"


def text_field(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) and value else None


def http_url(value: str) -> str | None:
    """A payment page a provider gave: only an absolute http(s) URL is passed to a payer."""
    parts = urlsplit(value)
    return value if parts.scheme in ("http", "https") and parts.netloc else None


# An amount a provider reports: below 10^16 and with at most 12 decimals. Anything else is
# not money, and a number such as 1e999999999 would cost gigabytes to print or multiply.
MAX_ADJUSTED = 15
MIN_EXPONENT = -12


def amount_field(value: object) -> Decimal | None:
    """An amount a provider reported (a JSON number read as Decimal, or a numeric string);
    None when it is not a finite, non-negative number of a sane size."""
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
        return None
    if isinstance(value, str) and len(value) > 64:
        return None
    try:
        amount = Decimal(value)
    except ArithmeticError:
        return None
    if not amount.is_finite() or amount < 0:
        return None
    exponent = amount.as_tuple().exponent
    if amount.adjusted() > MAX_ADJUSTED or (isinstance(exponent, int) and exponent < MIN_EXPONENT):
        return None
    return amount


def json_object(body: bytes) -> dict[str, Any]:
    """The webhook's body as a JSON object (numbers as Decimal); WebhookRejected otherwise,
    also for nesting deeper than the parser goes."""
    try:
        payload = jsonio.loads(body)
    except (ValueError, RecursionError):
        raise WebhookRejected("the body is not JSON") from None
    return checked_object(payload)


def checked_object(payload: Any) -> dict[str, Any]:
    """A parsed webhook body that is a JSON object of valid text; WebhookRejected otherwise
    (a lone surrogate could be neither hashed nor stored)."""
    if not isinstance(payload, dict):
        raise WebhookRejected("the body is not a JSON object")
    if jsonio.has_lone_surrogate(payload):
        raise WebhookRejected("the body holds text that is not Unicode (a lone surrogate)")
    return payload
