"""Wallet payments through Kazawallet payment links (seeds 003/004).

- start: `createPaymentLink` with `x-api-key`; `amount` as a string, `currency` from settings
  (TRY, or USD/USDT converted at the rate locked for the payment), `ref` = our
  transactionId, `redirectUrl` = the merchant's returnUrl (else our /pay/{id}), the payer's
  email when there is one. The seed shows no answer: the link is read from `url`, `link` or
  `paymentLink`, its id from `order_id`, `orderId` or `id` (the webhook names the link by
  `order_id`), at the top level or under `data`.
- parse: the webhook's `secret` must be base64(HMAC-SHA512(api_secret, SHA256(amount + ":::" +
  order_id + ":::" + api_key))) (raw digests, as the seed's PHP), compared in constant time.
  fulfilled → paid, timed_out → expired. The secret covers `order_id` and `amount` only:
  which link, and what was paid for it, are Kazawallet's word; `ref`, `status` and
  `currency` are not signed. So a webhook counts for the payment its link (`order_id`) was
  made for, whatever its `ref` says (watcher.payments.reports), and a link is fixed-price:
  less than it asked fails the payment, as a card paid short does (outcomes). Only for a
  payment whose start answer named no link is `ref` believed, as it must be (logged). One
  report is kept per link: once a link's webhook is stored, every copy of it (replayed, or
  with `ref`, `status` or `currency` altered) is a repeat and changes nothing. A copy altered
  before the real one reaches us would be taken in its place; that takes the webhook in
  transit (TLS to the webhook URL), and still pays no other payment than the link's.
- fetch, cancel: Kazawallet has no such calls; check: none either (NotChecked).

The webhook is stored before it is answered (watcher.payments.reports): sent once, never lost.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Final
from urllib.parse import parse_qs

import httpx

from watcher import jsonio
from watcher.config import KazawalletSettings
from watcher.errors import ProviderError
from watcher.money import canonical, converted
from watcher.payments.outcomes import EXPIRED_OUTCOME, PAID, Report
from watcher.providers.base import (
    Inbound,
    NotChecked,
    Order,
    Started,
    Tracked,
    WebhookRejected,
)
from watcher.providers.wire import (
    amount_field,
    checked_object,
    http_url,
    post_json,
    said,
    text_field,
)

NAME: Final = "kazawallet"
WHO: Final = "Kazawallet"
CREATE: Final = "createPaymentLink"

# A webhook's status -> our outcome.
STATUSES: Final[dict[str, str]] = {"fulfilled": PAID, "timed_out": EXPIRED_OUTCOME}
LINK_KEYS: Final = ("url", "link", "paymentLink")
ID_KEYS: Final = ("order_id", "orderId", "id")  # the webhook names the link by order_id


def webhook_secret(amount: str, order_id: str, api_key: str, api_secret: str) -> str:
    """base64(HMAC-SHA512(api_secret, SHA256(amount:::order_id:::api_key))), as the seed's PHP."""
    digest = hashlib.sha256(f"{amount}:::{order_id}:::{api_key}".encode()).digest()
    mac = hmac.new(api_secret.encode(), digest, hashlib.sha512).digest()
    return base64.b64encode(mac).decode()


class KazawalletProvider:
    name = NAME

    def __init__(self, settings: KazawalletSettings) -> None:
        self.currency: str = settings.currency
        self._api_key = settings.api_key
        self._api_secret = settings.api_secret
        self._http = httpx.AsyncClient(
            base_url=settings.base_url + "/", timeout=settings.timeout_s, follow_redirects=False
        )

    async def start(self, order: Order) -> Started:
        body: dict[str, Any] = {
            "amount": canonical(self._amount(order)),
            "currency": self.currency,
            "ref": order.transaction_id,
            "redirectUrl": order.return_url or order.payment_url,
        }
        if order.email:
            body["email"] = order.email
        headers = {"x-api-key": self._api_key}
        status, answer = await post_json(self._http, WHO, CREATE, body, headers)
        link = _first(answer, LINK_KEYS)
        if status // 100 != 2 or answer.get("success") is False or link is None:
            reason = said(answer) or "no payment link in the answer"
            raise ProviderError(f"{WHO} refused the payment link (HTTP {status}): {reason}")
        url = http_url(link)
        if url is None:
            raise ProviderError(f"{WHO} answered with a payment link that is not http(s)")
        return Started(reference=_first(answer, ID_KEYS) or order.transaction_id, redirect_url=url)

    def parse(self, inbound: Inbound) -> list[Report]:
        payload = _payload(inbound)
        order_id, given = text_field(payload, "order_id"), text_field(payload, "secret")
        amount = _amount_text(payload.get("amount"))
        if order_id is None or given is None or amount is None:
            raise WebhookRejected("order_id, secret or a valid amount is missing")
        expected = webhook_secret(amount, order_id, self._api_key, self._api_secret)
        if not hmac.compare_digest(expected.encode(), given.strip().encode()):
            raise WebhookRejected("the secret does not match")
        status = text_field(payload, "status") or ""
        outcome = STATUSES.get(status)
        return [
            Report(
                key=f"link:{order_id}",
                type=f"webhook.{status}"[:64],
                outcome=outcome,
                transaction_id=text_field(payload, "ref"),
                reference=order_id,  # the link: what the secret vouches for
                payment_ref=order_id,
                paid_amount=amount_field(amount) if outcome == PAID else None,
                paid_currency=(text_field(payload, "currency") or self.currency).upper(),
            )
        ]

    async def fetch(self, tracked: Tracked) -> Report | None:
        return None  # no status call: the webhook, or the deadline

    async def cancel(self, reference: str) -> None:
        return None  # no call to close a link; it times out on its own

    async def check(self) -> str:
        raise NotChecked(
            "Kazawallet has no call to check credentials with; the API key is checked by the "
            "first payment link, the API secret by the first webhook"
        )

    async def close(self) -> None:
        await self._http.aclose()

    def _amount(self, order: Order) -> Decimal:
        if self.currency == order.currency:
            return order.amount
        if order.rate is None:
            raise ProviderError(f"no {self.currency} rate was locked for this payment")
        return converted(order.amount, order.rate)


def _first(answer: Mapping[str, Any], keys: tuple[str, ...]) -> str | None:
    """The first of `keys` found at the top level of the answer, then under `data`."""
    data = answer.get("data")
    for where in (answer, data if isinstance(data, dict) else {}):
        for key in keys:
            value = where.get(key)
            if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
                return str(value)
    return None


def _payload(inbound: Inbound) -> dict[str, Any]:
    """The webhook's fields: a JSON object, or a form (the seed does not say which)."""
    form = "application/x-www-form-urlencoded" in inbound.headers.get("content-type", "")
    if not form:
        try:
            payload = jsonio.loads(inbound.body)
        except RecursionError:
            raise WebhookRejected("the body is not JSON") from None
        except ValueError:
            form = True
        else:
            return checked_object(payload)
    try:
        fields = parse_qs(inbound.body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        raise WebhookRejected("the body is neither JSON nor a form") from None
    return {k: v[0] for k, v in fields.items()}


def _amount_text(value: object) -> str | None:
    """The amount as the sender's PHP would print it into the secret's string: a string as
    sent, a JSON number as PHP prints a float (10.50 -> "10.5", 100 -> "100"); None when it
    is no amount of money (wire.amount_field), so nothing is spent printing 1e999999999."""
    if amount_field(value) is None:
        return None
    if isinstance(value, str):
        return value
    assert isinstance(value, Decimal | int)
    return canonical(Decimal(value))
