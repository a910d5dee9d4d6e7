"""A local stand-in for AcidPanel's Provider API (seed 001), speaking its wire format.

It checks every request as AcidPanel does: `X-Api-Key`, `X-Timestamp` at most 5 minutes old,
and `X-Hash` = SHA256(api_key + secret_key + timestamp), or SHA256(api_key + secret_key +
credential_key + timestamp) with `X-Credential-Key` on the deposit endpoints; a request that
fails gets AcidPanel's 401 answers (`{"success": false, "message": "Invalid hash"}`).
Answers are the seed's shapes: `tracking_code` and `payment_url` under `data`, validation
errors as `{"success": false, "error": "Doğrulama hatası", "messages": [...]}`.

What the payer and AcidPanel's dealer do is done by `settle(tracking_code, status, amount)`,
which changes the payment and returns the callback AcidPanel would POST (body and headers,
signed with SHA256(api_key + secret_key + tracking_code + status + timestamp)); over HTTP,
`POST /_dev/acidpanel/{tracking_code}/{status}[?amount=…]` does the same and, when
`callback_url` is set, delivers the callback there.

Failure modes as in watcher.devchain.modes (`refuse`: the provider's own refusal).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from watcher import jsonio
from watcher.devchain.modes import FailureModes, Mode, deliver, serve_alone

PREFIX = "/api/provider"
WINDOW_S = 300

# Deposit endpoints: path -> (tracking code prefix, the kind of deposit).
DEPOSITS = {
    "/start-manual-deposit": ("MAN", "manual"),
    "/start-eiban-deposit": ("EIBAN", "eiban"),
    "/third-party/bank/start-deposit": ("TPBD", "third-party-bank"),
    "/third-party/wallet/start-deposit": ("TPWD", "third-party-wallet"),
}
CARD_FIELDS = ("credential_key", "username", "user_id", "firstname", "lastname", "email", "phone")
DEPOSIT_FIELDS = ("fullname", "username", "user_id")


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class FakeAcidPanel(FailureModes):
    def __init__(
        self,
        *,
        api_key: str,
        secret_key: str,
        credential_key: str,
        mode: Mode = "ok",
        delay_s: float = 30.0,
        base_url: str = "",
        callback_url: str | None = None,
        site_id: int = 12,
    ) -> None:
        self.api_key = api_key
        self.secret_key = secret_key
        self.credential_key = credential_key
        super().__init__(mode, delay_s)
        self.base_url = base_url  # where the payer's pages are said to be
        self.callback_url = callback_url  # where settle() over HTTP delivers callbacks
        self.site_id = site_id
        self.payments: dict[str, dict[str, Any]] = {}  # by tracking_code
        self.requests: list[dict[str, Any]] = []  # path, json, headers, answered

    def routes(self) -> list[BaseRoute]:
        api: list[tuple[str, Callable[[Request], Any]]] = [
            ("/welcome", self._welcome),
            ("/credit-card/payment", self._card),
            ("/credit-card/status", self._card_status),
        ]
        api += [(path, self._deposit) for path in DEPOSITS]
        routes: list[BaseRoute] = [
            Route(PREFIX + path, handler, methods=["POST"]) for path, handler in api
        ]
        return [
            *routes,
            Route("/_dev/acidpanel/{tracking}/{status}", self._control, methods=["POST"]),
            Route("/deposit/track/{tracking}", self._page, methods=["GET"]),
        ]

    # -- what the payer and AcidPanel do ---------------------------------------------------

    def settle(
        self,
        tracking: str,
        status: str,
        *,
        amount: Decimal | None = None,
        timestamp: int | None = None,
        error: tuple[str, str] | None = None,
    ) -> tuple[bytes, dict[str, str]]:
        """The payment reaches `status`; the callback AcidPanel POSTs about it."""
        payment = self.payments[tracking]
        payment["status"] = status
        if amount is not None:
            payment["amount"] = amount
        return self.callback(tracking, status, timestamp=timestamp, error=error)

    def callback(
        self,
        tracking: str,
        status: str,
        *,
        timestamp: int | None = None,
        error: tuple[str, str] | None = None,
    ) -> tuple[bytes, dict[str, str]]:
        payment = self.payments[tracking]
        stamp = int(time.time()) if timestamp is None else timestamp
        signature = sha256(f"{self.api_key}{self.secret_key}{tracking}{status}{stamp}")
        body: dict[str, Any] = {"tracking_code": tracking, "status": status}
        body["amount"] = payment["amount"]
        if payment["kind"] == "card":
            body.update(
                order_id=payment["order_id"],
                currency="TRY",
                username=payment["username"],
                user_id=payment["user_id"],
                site_id=self.site_id,
                customer_name=f"{payment['firstname']} {payment['lastname']}",
                customer_email=payment["email"],
            )
            if error is not None:
                body.update(error_code=error[0], error_message=error[1])
        else:
            body.update(
                username=payment["username"],
                fullname=payment["fullname"],
                user_id=payment["user_id"],
                site_id=self.site_id,
            )
        body.update(timestamp=stamp, hash=signature)
        headers = {
            "Content-Type": "application/json",
            "X-Api-Key": self.api_key,
            "X-Timestamp": str(stamp),
            "X-Hash": signature,
        }
        return _dumps(body), headers

    # -- the API ---------------------------------------------------------------------------

    async def _welcome(self, request: Request) -> Response:
        refused = await self._refused(request, credential=False)
        if refused is not None:
            return refused
        return self._answer(
            request,
            {
                "success": True,
                "message": "Welcome, Fake Provider!",
                "provider": {"id": 1, "name": "Fake Provider", "is_active": True},
                "timestamp": _now_text(),
            },
        )

    async def _card(self, request: Request) -> Response:
        refused = await self._refused(request, credential=False)
        if refused is not None:
            return refused
        body = self._last_json()
        problems = _missing(body, CARD_FIELDS) + _amount_problem(body)
        if problems:
            return self._answer(request, _invalid(problems), 422)
        if body["credential_key"] != self.credential_key:
            return self._answer(request, {"success": False, "message": "Invalid credential key"})
        if self.mode == "refuse":
            message = "Credit card payment is not enabled for this dealer"
            return self._answer(request, {"success": False, "message": message}, 400)
        tracking = f"CC-{secrets.token_hex(4).upper()}-{int(time.time())}"
        order_id = f"VL{time.strftime('%Y%m%d')}{secrets.token_hex(4).upper()}"
        self.payments[tracking] = {
            "kind": "card",
            "status": "pending",
            "amount": body["amount"],
            "order_id": order_id,
            **{k: body[k] for k in CARD_FIELDS if k != "credential_key"},
        }
        data = {
            "tracking_code": tracking,
            "payment_url": f"{self.base_url}/deposit/track/{tracking}",
            "order_id": order_id,
            "amount": body["amount"],
            "currency": "TRY",
        }
        message = "Payment created successfully"
        return self._answer(request, {"success": True, "message": message, "data": data})

    async def _card_status(self, request: Request) -> Response:
        refused = await self._refused(request, credential=False)
        if refused is not None:
            return refused
        tracking = self._last_json().get("tracking_code")
        payment = self.payments.get(tracking) if isinstance(tracking, str) else None
        if payment is None or payment["kind"] != "card":
            return self._answer(request, {"success": False, "message": "Payment not found"}, 404)
        data = {
            "tracking_code": tracking,
            "order_id": payment["order_id"],
            "status": payment["status"],
            "amount": payment["amount"],
            "currency": "TRY",
            "username": payment["username"],
            "user_id": payment["user_id"],
        }
        return self._answer(request, {"success": True, "data": data})

    async def _deposit(self, request: Request) -> Response:
        refused = await self._refused(request, credential=True)
        if refused is not None:
            return refused
        body = self._last_json()
        problems = _missing(body, DEPOSIT_FIELDS) + _amount_problem(body)
        if problems:
            return self._answer(request, _invalid(problems), 422)
        if self.mode == "refuse":
            message = "Bu ödeme yöntemi bu site için aktif değil"
            return self._answer(request, {"success": False, "message": message}, 400)
        prefix, kind = DEPOSITS[request.url.path.removeprefix(PREFIX)]
        tracking = f"{prefix}-{secrets.token_hex(4).upper()}-{int(time.time())}"
        self.payments[tracking] = {
            "kind": kind,
            "status": "showing",
            "amount": body["amount"],
            **{k: body[k] for k in DEPOSIT_FIELDS},
        }
        data = {
            "tracking_code": tracking,
            "payment_url": f"{self.base_url}/deposit/track/{tracking}",
            "site": {"id": self.site_id, "name": "Fake Site"},
            "customer": {k: body[k] for k in DEPOSIT_FIELDS},
            "amount": body["amount"],
            "status": "showing",
        }
        answer = {"success": True, "message": "Yatırım talebi oluşturuldu", "data": data}
        return self._answer(request, answer)

    async def _control(self, request: Request) -> Response:
        tracking, status = request.path_params["tracking"], request.path_params["status"]
        if tracking not in self.payments:
            return JSONResponse({"success": False, "message": "no such tracking_code"}, 404)
        raw = request.query_params.get("amount")
        body, headers = self.settle(tracking, status, amount=Decimal(raw) if raw else None)
        answer: dict[str, Any] = {"callback": json.loads(body), "headers": headers}
        if self.callback_url:
            answer["delivered"] = await deliver(self.callback_url, body, headers)
        return JSONResponse(answer)

    async def _page(self, request: Request) -> Response:
        tracking = request.path_params["tracking"]
        text = f"AcidPanel stand-in for {tracking}: POST /_dev/acidpanel/{tracking}/completed"
        return Response(text, media_type="text/plain")

    # -- checks ----------------------------------------------------------------------------

    async def _refused(self, request: Request, *, credential: bool) -> Response | None:
        """AcidPanel's answer when the request is not let in (None: it is)."""
        raw = await request.body()
        try:
            body = json.loads(raw, parse_float=Decimal) if raw else {}
        except ValueError:
            body = None
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.requests.append(
            {"path": request.url.path.removeprefix(PREFIX), "json": body, "headers": headers}
        )
        failure = await self._failure()
        if failure is not None:
            return failure
        api_key, given, stamp = (headers.get(h) for h in ("x-api-key", "x-hash", "x-timestamp"))
        if not api_key or not given or not stamp:
            return self._denied(request, "Missing required headers")
        if api_key != self.api_key:
            return self._denied(request, "Invalid API key")
        if not stamp.isdigit() or abs(time.time() - int(stamp)) > WINDOW_S:
            return self._denied(request, "Request timestamp expired")
        key = ""
        if credential:
            key = headers.get("x-credential-key", "")
            if key != self.credential_key:
                answer = {
                    "success": False,
                    "error": "Yetkisiz Credential Key",
                    "message": "Bu credential key sizin provider hesabınıza ait değil",
                }
                return self._answer(request, answer, 403)
        expected = sha256(f"{self.api_key}{self.secret_key}{key}{stamp}")
        if not hmac.compare_digest(expected, given):
            return self._denied(request, "Invalid hash")
        if not isinstance(body, dict):
            return self._answer(request, {"success": False, "message": "Invalid JSON"}, 400)
        return None

    def _last_json(self) -> dict[str, Any]:
        body = self.requests[-1]["json"]
        return body if isinstance(body, dict) else {}

    def _denied(self, request: Request, message: str) -> Response:
        return self._answer(request, {"success": False, "message": message}, 401)

    def _answer(self, request: Request, data: dict[str, Any], status: int = 200) -> Response:
        self.requests[-1]["answered"] = status
        return Response(_dumps(data), status, media_type="application/json")

    async def _failure(self) -> Response | None:
        return await self.failure({"success": False, "message": "Server Error"})


def _missing(body: Mapping[str, Any], fields: tuple[str, ...]) -> list[str]:
    return [f"{f} alanı zorunludur" for f in fields if not _text(body.get(f))]


def _text(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _amount_problem(body: Mapping[str, Any]) -> list[str]:
    amount = body.get("amount")
    if isinstance(amount, bool) or not isinstance(amount, int | Decimal) or amount < 1:
        return ["amount en az 1 olmalıdır"]
    return []


def _invalid(problems: list[str]) -> dict[str, Any]:
    return {"success": False, "error": "Doğrulama hatası", "messages": problems}


def _dumps(data: Mapping[str, Any]) -> bytes:
    return jsonio.dumps(dict(data)).encode()


def _now_text() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")


def serve(fake: FakeAcidPanel, host: str = "127.0.0.1") -> AbstractAsyncContextManager[str]:
    """Run `fake` alone on a free loopback port; yields its base URL (AcidPanel's base_url)."""
    return serve_alone(fake, PREFIX, host)
