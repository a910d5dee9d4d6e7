"""Merchant SDK: create payments, read their status and events, verify callbacks.

    async with WatcherClient("https://pay.example.com", api_key, webhook_secret) as kasa:
        created = await kasa.create_payment(Decimal("1000.00"), "Ahmet Yilmaz", "ORD-1",
                                            callback_url="https://shop.example.com/kasa")
        status = await kasa.get_status(external_ref="ORD-1")

    # in the webhook handler, with the raw request body and headers:
    event = verify_webhook(body, headers, webhook_secret)   # raises WebhookVerificationError
    return {"received": True}

Amounts are Decimal both ways (JSON numbers parsed without float). Errors of the API raise
WatcherAPIError with its code (INVALID_AMOUNT, DUPLICATE_REF, …).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from types import TracebackType
from typing import Any

import httpx

from watcher import jsonio
from watcher.callbacks.signing import (
    BODY_SIGNATURE_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    matches,
    sign,
    sign_body,
)
from watcher.clock import now_ms, parse_iso

DEFAULT_TOLERANCE_S = 300.0


class WebhookVerificationError(Exception):
    """The callback is not authentic or not fresh; answer it with an error, do not act on it."""


class WatcherAPIError(Exception):
    """The payment API answered with an error."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


def verify_webhook(
    body: bytes | str,
    headers: Mapping[str, str],
    secret: str,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    *,
    now: int | None = None,
) -> dict[str, Any]:
    """The callback payload, once its signatures and timestamp check out.

    Checks X-Signature (over values of the parsed payload, as the seed's Node.js snippet does),
    X-Body-Signature (over the raw body), both in constant time, and that X-Timestamp equals
    the payload's timestamp and lies within `tolerance_s` of `now` (epoch ms; default: the
    current time). Raises WebhookVerificationError saying which check failed.
    """
    raw = body.encode("utf-8") if isinstance(body, str) else bytes(body)
    lower = {k.lower(): v for k, v in headers.items()}
    signature = _header(lower, SIGNATURE_HEADER)
    timestamp = _header(lower, TIMESTAMP_HEADER)
    body_signature = _header(lower, BODY_SIGNATURE_HEADER)
    payload = _parse(raw)
    if payload.get("timestamp") != timestamp:
        raise WebhookVerificationError("X-Timestamp does not match the payload's timestamp")
    if not matches(_expected_signature(payload, secret, timestamp), signature):
        raise WebhookVerificationError("X-Signature does not match: wrong secret or altered fields")
    if not matches(sign_body(secret, timestamp, raw), body_signature):
        raise WebhookVerificationError("X-Body-Signature does not match: the body was altered")
    _check_fresh(timestamp, tolerance_s, now_ms() if now is None else now)
    return payload


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name.lower())
    if not value:
        raise WebhookVerificationError(f"missing {name} header")
    return value


def _parse(raw: bytes) -> dict[str, Any]:
    try:
        payload = jsonio.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise WebhookVerificationError("the body is not JSON") from exc
    if not isinstance(payload, dict):
        raise WebhookVerificationError("the body is not a JSON object")
    return payload


def _expected_signature(payload: Mapping[str, Any], secret: str, timestamp: str) -> str:
    fields = [payload.get(k) for k in ("transactionId", "externalRef", "status")]
    amount = payload.get("amount")
    if not all(isinstance(f, str) for f in fields) or not isinstance(amount, int | Decimal):
        raise WebhookVerificationError("the payload lacks the signed fields")
    if isinstance(amount, bool):
        raise WebhookVerificationError("the payload's amount is not a number")
    try:
        return sign(secret, str(fields[0]), str(fields[1]), str(fields[2]), amount, timestamp)
    except (ArithmeticError, UnicodeEncodeError) as exc:
        # Nothing we sign looks like this: an amount past the decimal context (1e1000000)
        # or text with a lone surrogate. Whoever sent it gets the verdict, not a crash.
        raise WebhookVerificationError("the payload's signed fields are malformed") from exc


def _check_fresh(timestamp: str, tolerance_s: float, now: int) -> None:
    try:
        sent = parse_iso(timestamp)
    except ValueError as exc:
        raise WebhookVerificationError(f"X-Timestamp {timestamp!r} is not an ISO time") from exc
    if abs(now - sent) > tolerance_s * 1000:
        raise WebhookVerificationError(
            f"X-Timestamp {timestamp} is more than {tolerance_s:g}s from now (replay or clock skew)"
        )


class WatcherClient:
    """The merchant API over HTTP; pass `http` to share a client, else one is made and owned."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        webhook_secret: str = "",
        *,
        http: httpx.AsyncClient | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._secret = webhook_secret
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(timeout=timeout_s)

    async def __aenter__(self) -> WatcherClient:
        return self

    async def __aexit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def create_payment(
        self,
        amount: Decimal | int | str,
        full_name: str,
        external_ref: str,
        *,
        provider: str = "crypto",
        currency: str = "TRY",
        email: str | None = None,
        phone: str | None = None,
        callback_url: str | None = None,
        return_url: str | None = None,
        cancel_url: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """POST /api/payment/create; the response (transactionId, paymentUrl, data, …)."""
        body: dict[str, Any] = {
            "amount": _amount(amount),
            "currency": currency,
            "fullName": full_name,
            "externalRef": external_ref,
            "provider": provider,
        }
        optional = {
            "email": email,
            "phone": phone,
            "callbackUrl": callback_url,
            "returnUrl": return_url,
            "cancelUrl": cancel_url,
            "metadata": dict(metadata) if metadata is not None else None,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        return await self._call("POST", "/api/payment/create", content=jsonio.dumps(body))

    async def get_status(
        self, *, transaction_id: str | None = None, external_ref: str | None = None
    ) -> dict[str, Any]:
        """GET /api/payment/status by one of the two ids; the `transaction` object."""
        if (transaction_id is None) == (external_ref is None):
            raise ValueError("pass exactly one of transaction_id and external_ref")
        params = (
            {"transactionId": transaction_id}
            if transaction_id is not None
            else {"externalRef": str(external_ref)}
        )
        answer = await self._call("GET", "/api/payment/status", params=params)
        transaction = answer.get("transaction")
        return transaction if isinstance(transaction, dict) else answer

    async def cancel(self, transaction_id: str) -> dict[str, Any]:
        """POST /api/payment/{id}/cancel (a pending payment only)."""
        return await self._call("POST", f"/api/payment/{transaction_id}/cancel")

    async def events(self, after: str | None = None, limit: int | None = None) -> dict[str, Any]:
        """GET /api/events: {"events": […], "next": cursor} for reconciliation."""
        params: dict[str, str] = {}
        if after is not None:
            params["after"] = after
        if limit is not None:
            params["limit"] = str(limit)
        return await self._call("GET", "/api/events", params=params)

    def verify_webhook(
        self,
        body: bytes | str,
        headers: Mapping[str, str],
        tolerance_s: float = DEFAULT_TOLERANCE_S,
        *,
        now: int | None = None,
    ) -> dict[str, Any]:
        """verify_webhook with this client's webhook secret."""
        if not self._secret:
            raise WebhookVerificationError("this client was made without a webhook secret")
        return verify_webhook(body, headers, self._secret, tolerance_s, now=now)

    async def _call(
        self,
        method: str,
        path: str,
        *,
        content: str | None = None,
        params: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        headers = {"x-api-key": self._api_key, "Accept": "application/json"}
        if content is not None:
            headers["Content-Type"] = "application/json"
        response = await self._http.request(
            method, self.base_url + path, content=content, params=params, headers=headers
        )
        return _answer(response)


def _amount(amount: Decimal | int | str) -> Decimal:
    if isinstance(amount, float | bool):
        raise TypeError("pass amounts as Decimal, int or str, never float")
    return Decimal(amount)


def _answer(response: httpx.Response) -> dict[str, Any]:
    try:
        data = jsonio.loads(response.content)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise WatcherAPIError(response.status_code, "SERVER_ERROR", "the answer is not JSON")
    if response.is_success and data.get("success", True) is not False:
        return data
    error = data.get("error")
    if not isinstance(error, dict):
        error = {}
    code = str(error.get("code", "SERVER_ERROR"))
    raise WatcherAPIError(response.status_code, code, str(error.get("message", "")))
