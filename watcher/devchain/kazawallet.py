"""A local stand-in for Kazawallet's payment links (seeds 003/004), speaking its wire format.

`POST /wallet/createPaymentLink` requires the `x-api-key` it was made with (else 401) and the
seed's body (`amount` as a string, `currency`, `ref`, `redirectUrl`; `email` optional); it
answers with the link's id and URL under `data` (the seed shows no answer; the adapter reads
`url`, `link` or `paymentLink`, so `link_key` says which one this fake uses; `id_key` None
leaves the id out, for an answer that names no link id).

What the payer does is done by `settle(order_id, status, amount)`, which returns the webhook
Kazawallet would POST: `order_id`, `secret` = base64(HMAC-SHA512(api_secret, SHA256(amount +
":::" + order_id + ":::" + api_key))), `amount`, `ref`, `status` (fulfilled or timed_out),
`currency`. Over HTTP, `POST /_dev/kazawallet/{order_id}/{status}` does the same and, when
`webhook_url` is set, delivers it there once, as Kazawallet does.

Failure modes as in watcher.devchain.modes (`refuse`: the provider's own refusal).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from contextlib import AbstractAsyncContextManager
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from watcher.devchain.modes import FailureModes, Mode, deliver, serve_alone

PREFIX = "/wallet"


def secret_of(amount: str, order_id: str, api_key: str, api_secret: str) -> str:
    inner = hashlib.sha256(f"{amount}:::{order_id}:::{api_key}".encode()).digest()
    return base64.b64encode(hmac.new(api_secret.encode(), inner, hashlib.sha512).digest()).decode()


class FakeKazawallet(FailureModes):
    def __init__(
        self,
        *,
        api_key: str,
        api_secret: str,
        mode: Mode = "ok",
        delay_s: float = 30.0,
        base_url: str = "",
        webhook_url: str | None = None,
        link_key: str = "link",
        id_key: str | None = "id",
        record_id: bool = False,
    ) -> None:
        self.api_key = api_key
        self.api_secret = api_secret
        super().__init__(mode, delay_s)
        self.base_url = base_url
        self.webhook_url = webhook_url
        self.link_key = link_key
        self.id_key = id_key
        self.record_id = record_id  # also an `id` of its own record, beside order_id
        self.links: dict[str, dict[str, Any]] = {}  # by order_id
        self.requests: list[dict[str, Any]] = []  # path, json, headers, answered

    def routes(self) -> list[BaseRoute]:
        return [
            Route(f"{PREFIX}/createPaymentLink", self._create, methods=["POST"]),
            Route("/_dev/kazawallet/{order_id}/{status}", self._control, methods=["POST"]),
            Route("/kazawallet/pay/{order_id}", self._page, methods=["GET"]),
        ]

    def order_of(self, ref: str) -> str:
        """The link's id (order_id) made for our `ref`."""
        return next(o for o, link in self.links.items() if link["ref"] == ref)

    def settle(
        self, order_id: str, status: str, *, amount: str | None = None
    ) -> tuple[bytes, dict[str, str]]:
        """The link is paid (`fulfilled`) or times out; the webhook Kazawallet POSTs once."""
        link = self.links[order_id]
        link["status"] = status
        paid = link["amount"] if amount is None else amount
        body = {
            "order_id": order_id,
            "secret": secret_of(paid, order_id, self.api_key, self.api_secret),
            "amount": paid,
            "ref": link["ref"],
            "status": status,
            "currency": link["currency"],
        }
        return json.dumps(body).encode(), {"Content-Type": "application/json"}

    async def _create(self, request: Request) -> Response:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.requests.append({"path": request.url.path, "json": body, "headers": headers})
        failure = await self._failure()
        if failure is not None:
            return failure
        if not hmac.compare_digest(headers.get("x-api-key", "").encode(), self.api_key.encode()):
            return self._answer({"success": False, "message": "Invalid API key"}, 401)
        problem = _problem(body)
        if problem is not None:
            return self._answer({"success": False, "message": problem}, 422)
        assert isinstance(body, dict)
        if self.mode == "refuse":
            message = f"Currency {body['currency']} is not enabled for this merchant"
            return self._answer({"success": False, "message": message}, 422)
        order_id = "pl_" + secrets.token_hex(8)
        self.links[order_id] = {
            "amount": body["amount"],
            "currency": body["currency"],
            "ref": body["ref"],
            "email": body.get("email"),
            "redirectUrl": body["redirectUrl"],
            "status": "pending",
        }
        data: dict[str, Any] = {self.link_key: f"{self.base_url}/kazawallet/pay/{order_id}"}
        if self.id_key is not None:
            data[self.id_key] = order_id
        if self.record_id:
            data["id"] = 4000 + len(self.links)
        return self._answer({"success": True, "message": "Payment link created", "data": data})

    async def _control(self, request: Request) -> Response:
        order_id, status = request.path_params["order_id"], request.path_params["status"]
        if order_id not in self.links:
            return JSONResponse({"success": False, "message": "no such payment link"}, 404)
        body, headers = self.settle(order_id, status, amount=request.query_params.get("amount"))
        answer: dict[str, Any] = {"webhook": json.loads(body)}
        if self.webhook_url:
            answer["delivered"] = await deliver(self.webhook_url, body, headers)
        return JSONResponse(answer)

    async def _page(self, request: Request) -> Response:
        order_id = request.path_params["order_id"]
        text = f"Kazawallet stand-in for {order_id}: POST /_dev/kazawallet/{order_id}/fulfilled"
        return Response(text, media_type="text/plain")

    def _answer(self, data: dict[str, Any], status: int = 200) -> Response:
        self.requests[-1]["answered"] = status
        return JSONResponse(data, status)

    async def _failure(self) -> Response | None:
        return await self.failure({"success": False, "message": "Internal server error"})


def _problem(body: object) -> str | None:
    """What the seed's request must have: amount as a string, currency, ref, redirectUrl."""
    if not isinstance(body, dict):
        return "the body must be a JSON object"
    if not isinstance(body.get("amount"), str):
        return "amount must be a string"
    for key in ("currency", "ref", "redirectUrl"):
        if not isinstance(body.get(key), str) or not body[key]:
            return f"{key} is required"
    return None


def serve(fake: FakeKazawallet, host: str = "127.0.0.1") -> AbstractAsyncContextManager[str]:
    """Run `fake` alone on a free loopback port; yields its base URL (Kazawallet's base_url)."""
    return serve_alone(fake, PREFIX, host)
