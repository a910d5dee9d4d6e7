"""A local stand-in for the part of Stripe's API that Checkout uses, speaking its wire format.

Requests come form-encoded as the `stripe` package sends them (`line_items[0][price_data]
[unit_amount]=1000000`), with `Authorization: Bearer sk_…` and `Idempotency-Key`; answers
are JSON in Stripe's shapes (`checkout.session` objects, `{"error": {…}}` with the HTTP
status Stripe uses). What the payer would do on Stripe's page is done by `complete()`,
`expire()` or `refund()`, which change the session and return the webhook event Stripe
would send (in live mode when the session was made with a live key, `sk_live_…`, as at
Stripe); `signed()` signs an event the way Stripe signs webhooks (`Stripe-Signature: t=…,
v1=HMAC-SHA256(secret, "t.body")`).

    ok       normal answers
    down     503 with an HTML body
    error    500 with Stripe's error JSON (api_error)
    refuse   400 invalid_request_error (a parameter Stripe does not accept)
    slow     answers only after `delay_s` (or when `unblock()` is called)

For tests, the demo and benches: `routes()` to mount, `serve()` to run it alone on loopback.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from watcher.api.serving import serve_asgi

Mode = Literal["ok", "down", "error", "refuse", "slow"]
LIVE_KEY_PREFIXES = ("sk_live_", "rk_live_")


def decode_form(body: bytes) -> dict[str, Any]:
    """Stripe's bracketed form encoding back into nested dicts and lists."""
    out: dict[str, Any] = {}
    for name, value in parse_qsl(body.decode(), keep_blank_values=True):
        keys = re.findall(r"[^\[\]]+", name)
        node: Any = out
        for i, key in enumerate(keys):
            last = i == len(keys) - 1
            nxt: Any = value if last else ([] if keys[i + 1].isdigit() else {})
            if isinstance(node, list):
                index = int(key)
                while len(node) <= index:
                    node.append(None)
                if node[index] is None or last:
                    node[index] = nxt
                node = node[index]
            else:
                if key not in node or last:
                    node[key] = nxt
                node = node[key]
    return out


def sign(body: bytes, secret: str, timestamp: int) -> str:
    """The Stripe-Signature header of `body`, signed at `timestamp` (epoch seconds)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


class FakeStripe:
    """Checkout Sessions with settable failure modes, and the events they would send."""

    def __init__(
        self,
        *,
        mode: Mode = "ok",
        delay_s: float = 30.0,
        base_url: str = "",
        secret_key: str | None = None,
    ) -> None:
        self.mode: Mode = mode
        self.secret_key = secret_key  # when set, any other bearer key is refused (401)
        self.delay_s = delay_s
        self.base_url = base_url  # where "Stripe's" payment pages are said to be
        self.sessions: dict[str, dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []  # method, path, form, headers
        self._idempotent: dict[str, dict[str, Any]] = {}
        self._unblocked = asyncio.Event()

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/v1/checkout/sessions", self._create, methods=["POST"]),
            Route("/v1/checkout/sessions", self._list, methods=["GET"]),
            Route("/v1/checkout/sessions/{sid}", self._retrieve, methods=["GET"]),
            Route("/v1/checkout/sessions/{sid}/expire", self._expire, methods=["POST"]),
            # What the payer and Stripe do, for a demo or a shell session: the session changes
            # and the answer is the event Stripe would send (unsigned; sign it to post it).
            Route("/_dev/stripe/{sid}/{action}", self._control, methods=["POST"]),
            Route("/c/pay/{sid}", self._payment_page, methods=["GET"]),
        ]

    def unblock(self) -> None:
        self._unblocked.set()

    # -- what the payer and Stripe do ------------------------------------------------------

    def complete(self, sid: str, *, paid: bool = True) -> dict[str, Any]:
        """The payer paid on Stripe's page: the session completes."""
        session = self.sessions[sid]
        session.update(
            status="complete",
            payment_status="paid" if paid else "unpaid",
            payment_intent="pi_" + secrets.token_hex(12),
        )
        return self.event("checkout.session.completed", session)

    def expire(self, sid: str) -> dict[str, Any]:
        self.sessions[sid].update(status="expired")
        return self.event("checkout.session.expired", self.sessions[sid])

    def refund(self, sid: str) -> dict[str, Any]:
        session = self.sessions[sid]
        charge = {
            "id": "ch_" + secrets.token_hex(12),
            "object": "charge",
            "amount": session["amount_total"],
            "amount_refunded": session["amount_total"],
            "currency": session["currency"],
            "paid": True,
            "refunded": True,
            "livemode": session["livemode"],
            "payment_intent": session["payment_intent"],
            # PaymentIntent metadata, which Stripe copies to the charge it creates
            "metadata": dict(session.get("payment_intent_metadata") or {}),
        }
        return self.event("charge.refunded", charge)

    def event(self, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        public = _public(obj)
        return {
            "id": "evt_" + secrets.token_hex(12),
            "object": "event",
            "api_version": "2025-01-27.acacia",
            "created": int(time.time()),
            "livemode": obj.get("livemode") is True,  # events share their object's mode
            "pending_webhooks": 1,
            "type": kind,
            "data": {"object": public},
        }

    def signed(
        self, event: dict[str, Any], secret: str, timestamp: int | None = None
    ) -> tuple[bytes, dict[str, str]]:
        """The body and headers Stripe would POST for `event`."""
        body = json.dumps(event, separators=(",", ":")).encode()
        stamp = int(time.time()) if timestamp is None else timestamp
        return body, {
            "Stripe-Signature": sign(body, secret, stamp),
            "Content-Type": "application/json",
        }

    # -- the API -------------------------------------------------------------------------

    async def _create(self, request: Request) -> Response:
        form = await self._record(request)
        failure = await self._failure(request)
        if failure is not None:
            return failure
        key = request.headers.get("idempotency-key")
        if key and key in self._idempotent:
            return JSONResponse(self._idempotent[key])
        problem = _check(form)
        if problem is not None:
            return _error(400, "invalid_request_error", problem)
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        session = self._new_session(form, bearer)
        self.sessions[session["id"]] = session
        public = _public(session)
        if key:
            self._idempotent[key] = public
        return JSONResponse(public)

    async def _list(self, request: Request) -> Response:
        await self._record(request)
        failure = await self._failure(request)
        if failure is not None:
            return failure
        limit = int(request.query_params.get("limit", "10"))
        data = [_public(s) for s in list(self.sessions.values())[-limit:]]
        return JSONResponse(
            {"object": "list", "url": "/v1/checkout/sessions", "has_more": False, "data": data}
        )

    async def _retrieve(self, request: Request) -> Response:
        session = await self._session(request)
        if isinstance(session, Response):
            return session
        return JSONResponse(_public(session))

    async def _expire(self, request: Request) -> Response:
        session = await self._session(request)
        if isinstance(session, Response):
            return session
        if session["status"] != "open":
            return _error(400, "invalid_request_error", "Only open sessions can be expired")
        self.expire(session["id"])
        return JSONResponse(_public(session))

    async def _session(self, request: Request) -> dict[str, Any] | Response:
        """The session the path names, or the answer to give instead."""
        await self._record(request)
        failure = await self._failure(request)
        if failure is not None:
            return failure
        session = self.sessions.get(request.path_params["sid"])
        if session is None:
            return _error(404, "invalid_request_error", "No such checkout.session")
        return session

    async def _control(self, request: Request) -> Response:
        sid, action = request.path_params["sid"], request.path_params["action"]
        if sid not in self.sessions:
            return _error(404, "invalid_request_error", "No such checkout.session")
        moves = {"complete": self.complete, "expire": self.expire, "refund": self.refund}
        if action not in moves:
            return _error(404, "invalid_request_error", f"no action {action!r}")
        return JSONResponse(moves[action](sid))

    async def _payment_page(self, request: Request) -> Response:
        sid = request.path_params["sid"]
        text = f"Stripe Checkout stand-in for {sid}: POST /_dev/stripe/{sid}/complete to pay."
        return Response(text, media_type="text/plain")

    def _new_session(self, form: dict[str, Any], key: str) -> dict[str, Any]:
        # As Stripe does: the secret key's mode is the session's (sk_live_/rk_live_: live).
        live = key.startswith(LIVE_KEY_PREFIXES)
        sid = ("cs_live_" if live else "cs_test_") + secrets.token_hex(16)
        item = form["line_items"][0]
        amount = int(item["price_data"]["unit_amount"]) * int(item.get("quantity", "1"))
        return {
            "id": sid,
            "object": "checkout.session",
            "mode": form.get("mode"),
            "status": "open",
            "payment_status": "unpaid",
            "amount_total": amount,
            "currency": item["price_data"]["currency"],
            "client_reference_id": form.get("client_reference_id"),
            "customer_email": form.get("customer_email"),
            "success_url": form.get("success_url"),
            "cancel_url": form.get("cancel_url"),
            "expires_at": int(form["expires_at"]),
            "metadata": form.get("metadata", {}),
            "payment_intent": None,
            "livemode": live,
            "url": f"{self.base_url}/c/pay/{sid}",
            "payment_intent_metadata": (form.get("payment_intent_data") or {}).get("metadata"),
        }

    async def _record(self, request: Request) -> dict[str, Any]:
        body = await request.body()
        form = decode_form(body) if body else dict(request.query_params)
        self.requests.append(
            {
                "method": request.method,
                "path": request.url.path,
                "form": form,
                "headers": {k.lower(): v for k, v in request.headers.items()},
            }
        )
        return form

    async def _failure(self, request: Request) -> Response | None:
        if self.secret_key is not None:
            given = request.headers.get("authorization", "").removeprefix("Bearer ")
            if not hmac.compare_digest(given.encode(), self.secret_key.encode()):
                shown = f"{given[:8]}{'*' * 4}{given[-4:]}" if len(given) > 12 else "****"
                return _error(401, "invalid_request_error", f"Invalid API Key provided: {shown}")
        if self.mode == "down":
            return Response("<html><body>503</body></html>", 503, media_type="text/html")
        if self.mode == "error":
            return _error(500, "api_error", "Something went wrong on Stripe's end.")
        if self.mode == "refuse":
            return _error(400, "invalid_request_error", "Invalid currency: xyz")
        if self.mode == "slow":
            try:
                await asyncio.wait_for(self._unblocked.wait(), self.delay_s)
            except TimeoutError:
                pass
        return None


def _check(form: dict[str, Any]) -> str | None:
    """What Stripe itself would refuse in a session create."""
    try:
        item = form["line_items"][0]
        int(item["price_data"]["unit_amount"])
        expires = int(form["expires_at"])
    except (KeyError, IndexError, TypeError, ValueError):
        return "Missing required param: line_items or expires_at."
    if form.get("mode") != "payment":
        return "mode must be payment"
    # By Stripe's clock, when it creates the session: at least 30 minutes, under 24 hours.
    if expires - time.time() < 30 * 60:
        return (
            "The `expires_at` timestamp must be at least 30 minutes from Checkout Session creation."
        )
    if expires - time.time() >= 24 * 3600:
        return (
            "The `expires_at` timestamp must be less than 24 hours from Checkout Session creation."
        )
    return None


def _public(session: dict[str, Any]) -> dict[str, Any]:
    """The session as Stripe shows it (without what the fake keeps for the charge)."""
    return {k: v for k, v in session.items() if k != "payment_intent_metadata"}


def _error(status: int, kind: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"type": kind, "message": message}}, status_code=status)


@asynccontextmanager
async def serve(fake: FakeStripe, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """Run `fake` alone on a free loopback port; yields its base URL (the api_base)."""
    async with serve_asgi(Starlette(routes=fake.routes()), host) as url:
        if not fake.base_url:
            fake.base_url = url
        try:
            yield url
        finally:
            fake.unblock()
