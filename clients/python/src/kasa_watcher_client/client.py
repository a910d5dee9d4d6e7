"""The merchant API over HTTP, async (`WatcherClient`) or blocking (`Client`).

    async with WatcherClient("https://pay.example.com", api_key) as kasa:
        created = await kasa.create_payment(Decimal("1000.00"), "Ahmet Yilmaz", "ORD-1",
                                            callback_url="https://shop.example.com/kasa")
        status = await kasa.get_status(external_ref="ORD-1")

Both take the same arguments and return the same dicts; amounts are Decimal both ways (every
money field of an answer, whole or not; never float). An error answer raises
WatcherAPIError with its code (INVALID_AMOUNT, DUPLICATE_REF, …).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import TracebackType
from typing import Any

import httpx

from kasa_watcher_client import _json
from kasa_watcher_client.errors import WatcherAPIError

DEFAULT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class _Request:
    method: str
    path: str
    params: dict[str, str] = field(default_factory=dict)
    body: str | None = None


def _create(
    amount: Decimal | int | str,
    full_name: str,
    external_ref: str,
    provider: str,
    currency: str,
    optional: Mapping[str, Any],
) -> _Request:
    if isinstance(amount, float | bool):
        raise TypeError("pass amounts as Decimal, int or str, never float")
    body: dict[str, Any] = {
        "amount": Decimal(amount),
        "currency": currency,
        "fullName": full_name,
        "externalRef": external_ref,
        "provider": provider,
    }
    body.update({key: value for key, value in optional.items() if value is not None})
    return _Request("POST", "/api/payment/create", body=_json.dumps(body))


def _status(transaction_id: str | None, external_ref: str | None) -> _Request:
    if (transaction_id is None) == (external_ref is None):
        raise ValueError("pass exactly one of transaction_id and external_ref")
    if transaction_id is not None:
        return _Request("GET", "/api/payment/status", {"transactionId": transaction_id})
    return _Request("GET", "/api/payment/status", {"externalRef": str(external_ref)})


def _cancel(transaction_id: str) -> _Request:
    return _Request("POST", f"/api/payment/{transaction_id}/cancel")


def _events(after: str | None, limit: int | None) -> _Request:
    params = {"after": after or ""}
    if limit is not None:
        params["limit"] = str(limit)
    return _Request("GET", "/api/events", params)


def _optional(
    email: str | None,
    phone: str | None,
    callback_url: str | None,
    return_url: str | None,
    cancel_url: str | None,
    metadata: Mapping[str, Any] | None,
) -> dict[str, Any]:
    return {
        "email": email,
        "phone": phone,
        "callbackUrl": callback_url,
        "returnUrl": return_url,
        "cancelUrl": cancel_url,
        "metadata": dict(metadata) if metadata is not None else None,
    }


def _headers(api_key: str, request: _Request) -> dict[str, str]:
    headers = {"x-api-key": api_key, "Accept": "application/json"}
    if request.body is not None:
        headers["Content-Type"] = "application/json"
    return headers


def _answer(response: httpx.Response) -> dict[str, Any]:
    try:
        data = _json.loads(response.content)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise WatcherAPIError(response.status_code, "SERVER_ERROR", "the answer is not JSON")
    if response.is_success and data.get("success", True) is not False:
        return data
    error = data.get("error") if isinstance(data.get("error"), dict) else {}
    assert isinstance(error, dict)
    code = str(error.get("code", "SERVER_ERROR"))
    raise WatcherAPIError(response.status_code, code, str(error.get("message", "")))


def _transaction(answer: dict[str, Any]) -> dict[str, Any]:
    transaction = answer.get("transaction")
    return transaction if isinstance(transaction, dict) else answer


class WatcherClient:
    """Async client; pass `http` to share an httpx.AsyncClient, else one is made and owned."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        http: httpx.AsyncClient | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
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
        """POST /api/payment/create: transactionId, paymentUrl, data (crypto) or redirectUrl."""
        optional = _optional(email, phone, callback_url, return_url, cancel_url, metadata)
        return await self._send(
            _create(amount, full_name, external_ref, provider, currency, optional)
        )

    async def get_status(
        self, *, transaction_id: str | None = None, external_ref: str | None = None
    ) -> dict[str, Any]:
        """GET /api/payment/status by one of the two ids: the `transaction` object."""
        return _transaction(await self._send(_status(transaction_id, external_ref)))

    async def cancel(self, transaction_id: str) -> dict[str, Any]:
        """POST /api/payment/{id}/cancel: a pending payment that has received nothing."""
        return _transaction(await self._send(_cancel(transaction_id)))

    async def events(self, after: str | None = None, limit: int | None = None) -> dict[str, Any]:
        """GET /api/events: {"events": [...], "next": cursor, "hasMore": bool}."""
        return await self._send(_events(after, limit))

    async def _send(self, request: _Request) -> dict[str, Any]:
        response = await self._http.request(
            request.method,
            self.base_url + request.path,
            params=request.params,
            content=request.body,
            headers=_headers(self._api_key, request),
        )
        return _answer(response)


class Client:
    """Blocking client, for shops whose web framework is not async."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        http: httpx.Client | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._owns_http = http is None
        self._http = http or httpx.Client(timeout=timeout_s)

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def create_payment(
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
        """POST /api/payment/create: transactionId, paymentUrl, data (crypto) or redirectUrl."""
        optional = _optional(email, phone, callback_url, return_url, cancel_url, metadata)
        return self._send(_create(amount, full_name, external_ref, provider, currency, optional))

    def get_status(
        self, *, transaction_id: str | None = None, external_ref: str | None = None
    ) -> dict[str, Any]:
        """GET /api/payment/status by one of the two ids: the `transaction` object."""
        return _transaction(self._send(_status(transaction_id, external_ref)))

    def cancel(self, transaction_id: str) -> dict[str, Any]:
        """POST /api/payment/{id}/cancel: a pending payment that has received nothing."""
        return _transaction(self._send(_cancel(transaction_id)))

    def events(self, after: str | None = None, limit: int | None = None) -> dict[str, Any]:
        """GET /api/events: {"events": [...], "next": cursor, "hasMore": bool}."""
        return self._send(_events(after, limit))

    def _send(self, request: _Request) -> dict[str, Any]:
        response = self._http.request(
            request.method,
            self.base_url + request.path,
            params=request.params,
            content=request.body,
            headers=_headers(self._api_key, request),
        )
        return _answer(response)
