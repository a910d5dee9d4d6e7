"""Card, bank and wallet payments through AcidPanel's Provider API (seed 001).

Every request is signed as the seed's PHP signs it: `X-Api-Key`, `X-Timestamp` (Unix
seconds) and `X-Hash` = SHA256(api_key + secret_key + timestamp), or SHA256(api_key +
secret_key + credential_key + timestamp) with `X-Credential-Key` for the endpoints that take
the site's credential key (deposits).

- start: card → /credit-card/payment (the credential key goes in the body; the name split
  into first and last); bank → /start-manual-deposit, /start-eiban-deposit or
  /third-party/bank/start-deposit (`bank_method`); wallet → /third-party/wallet/start-deposit.
  `user_id` (and `username`) = metadata.userId, else the externalRef. AcidPanel's
  `tracking_code` is the reference, its `payment_url` the payer's page.
- parse: the callback's X-Hash = SHA256(api_key + secret_key + tracking_code + status +
  X-Timestamp), compared in constant time, the timestamp at most 5 minutes away; the status
  looked up in STATUSES. The callback's `amount` is what AcidPanel approved (a payer may edit
  the amount on its deposit page): it is reported as the paid amount, and a paid callback
  without a readable amount above zero is refused as malformed.
- fetch: /credit-card/status for card payments; AcidPanel has no status call for deposits.
- check: /welcome.

AcidPanel takes no idempotency key: concurrent starts of one payment in this process share
one call (`_starting`), and its answer is kept for REMEMBER_S after it came (while the
payment service stores it), so a double-clicked create does not open two deposits.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any, Final

import httpx

from watcher.clock import Clock, now_ms
from watcher.config import AcidPanelSettings
from watcher.errors import ProviderError
from watcher.payments.outcomes import (
    CANCELLED_OUTCOME,
    EXPIRED_OUTCOME,
    FAILED_OUTCOME,
    PAID,
    REFUNDED_OUTCOME,
    Report,
)
from watcher.providers.base import Inbound, Order, Started, Tracked, WebhookRejected
from watcher.providers.wire import (
    amount_field,
    clean,
    http_url,
    json_object,
    post_json,
    said,
    text_field,
)

NAME: Final = "acidpanel"
TOLERANCE_S: Final = 300
REMEMBER_S: Final = 60.0  # how long a start's answer is reused for the same payment
WHO: Final = "AcidPanel"

WELCOME: Final = "/welcome"
CARD_PAYMENT: Final = "/credit-card/payment"
CARD_STATUS: Final = "/credit-card/status"
BANK_DEPOSIT: Final = {
    "manual": "/start-manual-deposit",
    "eiban": "/start-eiban-deposit",
    "third-party": "/third-party/bank/start-deposit",
}
WALLET_DEPOSIT: Final = "/third-party/wallet/start-deposit"

# A callback's (or the card status call's) status -> our outcome. Deposits say completed,
# canceled or expired; cards success, failed, cancelled or refunded (pending: nothing yet).
STATUSES: Final[dict[str, str | None]] = {
    "completed": PAID,
    "success": PAID,
    "canceled": CANCELLED_OUTCOME,
    "cancelled": CANCELLED_OUTCOME,
    "expired": EXPIRED_OUTCOME,
    "failed": FAILED_OUTCOME,
    "refunded": REFUNDED_OUTCOME,
    "pending": None,
    "showing": None,
}


def request_hash(api_key: str, secret_key: str, timestamp: int, credential_key: str = "") -> str:
    """X-Hash of a request: SHA256(api_key + secret_key [+ credential_key] + timestamp)."""
    return _sha256(f"{api_key}{secret_key}{credential_key}{timestamp}")


def callback_hash(
    api_key: str, secret_key: str, tracking_code: str, status: str, timestamp: str
) -> str:
    """X-Hash of a callback: SHA256(api_key + secret_key + tracking_code + status + timestamp)."""
    return _sha256(f"{api_key}{secret_key}{tracking_code}{status}{timestamp}")


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def split_name(full_name: str) -> tuple[str, str]:
    """First and last name for the card call: the last word is the last name ("Mehmet Ali
    Demir" → "Mehmet Ali", "Demir"); a single word is both."""
    words = full_name.split()
    if len(words) < 2:
        return full_name.strip(), full_name.strip()
    return " ".join(words[:-1]), words[-1]


class AcidPanelProvider:
    name = NAME
    currency = "TRY"

    def __init__(self, settings: AcidPanelSettings, clock: Clock = now_ms) -> None:
        self._api_key = settings.api_key
        self._secret_key = settings.secret_key
        self._credential_key = settings.credential_key
        self._bank_path = BANK_DEPOSIT[settings.bank_method]
        self._clock = clock
        self._http = httpx.AsyncClient(
            base_url=settings.base_url + "/", timeout=settings.timeout_s, follow_redirects=False
        )
        self._starting: dict[str, asyncio.Task[Started]] = {}

    def headers(self, *, credential: bool) -> dict[str, str]:
        timestamp = self._clock() // 1000
        key = self._credential_key if credential else ""
        headers = {
            "X-Api-Key": self._api_key,
            "X-Timestamp": str(timestamp),
            "X-Hash": request_hash(self._api_key, self._secret_key, timestamp, key),
        }
        if credential:
            headers["X-Credential-Key"] = self._credential_key
        return headers

    async def start(self, order: Order) -> Started:
        key = order.transaction_id
        task = self._starting.get(key)
        if task is None:
            task = asyncio.ensure_future(self._start(order))
            self._starting[key] = task
            task.add_done_callback(lambda done: self._forget_later(key, done))
        return await asyncio.shield(task)

    def _forget_later(self, key: str, done: asyncio.Task[Started]) -> None:
        if done.cancelled() or done.exception() is not None:
            self._starting.pop(key, None)  # a failed start may be tried again at once
            return
        loop = asyncio.get_running_loop()
        loop.call_later(REMEMBER_S, lambda: self._starting.pop(key, None))

    async def _start(self, order: Order) -> Started:
        user_id = order.user_id or order.external_ref
        if order.method == "card":
            first, last = split_name(order.full_name)
            body: dict[str, Any] = {
                "credential_key": self._credential_key,
                "username": user_id,
                "user_id": user_id,
                "firstname": first,
                "lastname": last,
                "email": order.email,
                "phone": order.phone,
                "amount": order.amount,
                "description": f"Order {order.external_ref}",
            }
            data = await self._call(CARD_PAYMENT, body, credential=False, what="the card payment")
        else:
            path = self._bank_path if order.method == "bank" else WALLET_DEPOSIT
            body = {
                "fullname": order.full_name,
                "username": user_id,
                "user_id": user_id,
                "amount": order.amount,
            }
            data = await self._call(path, body, credential=True, what=f"the {order.method} deposit")
        started = _data(data)
        tracking, url = text_field(started, "tracking_code"), http_url(_str(started, "payment_url"))
        if tracking is None or url is None:
            raise ProviderError(f"{WHO} answered without a tracking_code or payment_url")
        return Started(reference=tracking, redirect_url=url)

    def parse(self, inbound: Inbound) -> list[Report]:
        given = inbound.headers.get("x-hash", "").strip().lower()
        stamp = inbound.headers.get("x-timestamp", "").strip()
        if not given or not stamp:
            raise WebhookRejected("X-Hash or X-Timestamp is missing")
        if not _fresh(stamp, inbound.received_ms):
            raise WebhookRejected("X-Timestamp is not within 5 minutes of now")
        payload = json_object(inbound.body)
        tracking, status = _str(payload, "tracking_code"), _str(payload, "status")
        expected = callback_hash(self._api_key, self._secret_key, tracking, status, stamp)
        if not hmac.compare_digest(expected.encode(), given.encode()):
            raise WebhookRejected("X-Hash does not match")
        if not tracking:
            raise WebhookRejected("the callback has no tracking_code")
        report = _report(payload, tracking, status, f"callback.{status}")
        if report.outcome == PAID and (report.paid_amount is None or report.paid_amount <= 0):
            # The approved amount is what completes the payment: without it, nothing to do.
            raise WebhookRejected("a paid callback without a readable amount above zero")
        return [report]

    async def fetch(self, tracked: Tracked) -> Report | None:
        if tracked.method != "card":
            return None  # deposits have no status call: their callbacks, or the deadline
        body = {"tracking_code": tracked.reference}
        data = _data(await self._call(CARD_STATUS, body, credential=False, what="the status"))
        status = _str(data, "status")
        if STATUSES.get(status) is None:
            return None
        return _report(data, tracked.reference, status, f"status.{status}")

    async def cancel(self, reference: str) -> None:
        return None  # AcidPanel has no call to close a payment; its own deadline does

    async def check(self) -> str:
        data = await self._call(WELCOME, {}, credential=False, what="the credentials")
        return clean(_str(data, "message") or "the credentials were accepted")

    async def close(self) -> None:
        await self._http.aclose()

    async def _call(
        self, path: str, body: Mapping[str, Any], *, credential: bool, what: str
    ) -> dict[str, Any]:
        headers = self.headers(credential=credential)
        status, data = await post_json(self._http, WHO, path.lstrip("/"), body, headers)
        if status // 100 != 2 or data.get("success") is not True:
            reason = said(data) or "no reason given"
            raise ProviderError(f"{WHO} refused {what} (HTTP {status}): {reason}")
        return data


def _fresh(stamp: str, now_ms: int) -> bool:
    """Unix seconds (ASCII digits only: str.isdigit also takes '²') within 5 minutes."""
    if not (stamp.isascii() and stamp.isdigit()) or len(stamp) > 12:
        return False
    return abs(now_ms - int(stamp) * 1000) <= TOLERANCE_S * 1000


def _data(answer: Mapping[str, Any]) -> dict[str, Any]:
    data = answer.get("data")
    return data if isinstance(data, dict) else {}


def _str(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    return value if isinstance(value, str) else ""


def _report(data: Mapping[str, Any], tracking: str, status: str, kind: str) -> Report:
    outcome = STATUSES.get(status)
    reason = None
    if outcome == FAILED_OUTCOME:
        code, message = _str(data, "error_code"), _str(data, "error_message")
        reason = clean(": ".join(p for p in (code, message) if p)) or "failed"
    return Report(
        key=f"{tracking}:{status}",
        type=kind[:64],
        outcome=outcome,
        reference=tracking,
        payment_ref=text_field(data, "order_id"),
        paid_amount=amount_field(data.get("amount")) if outcome == PAID else None,
        reason=reason,
    )
