"""Card payments through Stripe Checkout, with the official `stripe` package.

- start: a Checkout Session in TRY kuruş; `client_reference_id` and the idempotency key are
  our transactionId, so a retried start gets the same session; success/cancel go to the
  merchant's returnUrl/cancelUrl (else our /pay/{id}); the session expires with the payment.
- parse: `Stripe-Signature` checked by the package (HMAC-SHA256 of `t.body`, 5 minutes'
  tolerance), then the event type looked up in EVENTS; other types are answered and ignored.
- fetch: the session as Stripe has it now, for a webhook that never came.

Every payment this adapter takes is a live one (test-mode payments go to the sandbox), so
only live-mode Stripe objects count: a test-mode event or session (`livemode: false`) takes
no money, and with a test key by mistake anyone could "pay" with 4242 4242 4242 4242.
- check: list one checkout session (the read `fetch` needs), so a wrong or restricted key
  shows before a payer meets it.

Every call to Stripe is in this module, through one StripeClient pointed at
`[providers.stripe] api_base`.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

import stripe
import structlog
from stripe.params.checkout import SessionCreateParams

from watcher.config import StripeSettings
from watcher.errors import ProviderError
from watcher.money import KURUS
from watcher.payments.outcomes import (
    EXPIRED_OUTCOME,
    FAILED_OUTCOME,
    PAID,
    PROCESSING,
    REFUNDED_OUTCOME,
    Report,
)
from watcher.providers.base import Inbound, Order, Started, Tracked, WebhookRejected
from watcher.providers.wire import checked_object

log = structlog.get_logger("watcher.providers.stripe")

NAME = "stripe"
TEST_KEY_PREFIXES = ("sk_test_", "rk_test_")
EXPIRY_MIN_S = 30 * 60 + 30  # Stripe: at least 30 minutes after it creates the session
EXPIRY_MAX_S = 24 * 3600 - 30  # Stripe: less than 24 hours
EXPIRY_STEP_S = 10
TEST_MODE = "test_mode"  # the reason kept on a test-mode report, which changes nothing
TOLERANCE_S = 300
SIGNATURE_HEADER = "stripe-signature"

# A Checkout Session's payment_status when it completes -> our outcome.
SESSION_PAYMENT_STATUS = {
    "paid": PAID,
    "no_payment_required": PAID,
    "unpaid": PROCESSING,  # a delayed method (bank debit): async_payment_* follows
}
# A session's status as `fetch` finds it -> our outcome (open: nothing to say yet).
SESSION_STATUS = {"expired": EXPIRED_OUTCOME}


def _session_completed(session: Mapping[str, Any]) -> str | None:
    return SESSION_PAYMENT_STATUS.get(str(session.get("payment_status")))


def _charge_refunded(charge: Mapping[str, Any]) -> str | None:
    return REFUNDED_OUTCOME if charge.get("refunded") is True else None  # partial: ignored


# Event type -> the outcome it reports, from the event's object.
EVENTS: dict[str, Callable[[Mapping[str, Any]], str | None]] = {
    "checkout.session.completed": _session_completed,
    "checkout.session.async_payment_succeeded": lambda _: PAID,
    "checkout.session.async_payment_failed": lambda _: FAILED_OUTCOME,
    "checkout.session.expired": lambda _: EXPIRED_OUTCOME,
    "charge.refunded": _charge_refunded,
}
FAILURE_REASONS = {"checkout.session.async_payment_failed": "async_payment_failed"}


class _HTTPXClient(stripe.HTTPXClient):
    """The package's httpx client, sending the form body as `content=`: it passes raw bytes
    as `data=`, which httpx deprecates (a warning on every request, an error some day)."""

    def _get_request_args_kwargs(
        self, method: str, url: str, headers: Mapping[str, str], post_data: Any
    ) -> list[Any]:
        args, kwargs = super()._get_request_args_kwargs(method, url, headers, post_data)
        data = kwargs.pop("data", None)
        if data:
            kwargs["content"] = data
        return [args, kwargs]


class StripeProvider:
    name = NAME
    currency = "TRY"

    def __init__(self, settings: StripeSettings, public_url: str) -> None:
        self._webhook_secret = settings.webhook_secret
        self._test_key = settings.secret_key.startswith(TEST_KEY_PREFIXES)
        if self._test_key:
            log.warning(
                "stripe.test_mode_key",
                message="providers.stripe.secret_key is a Stripe test-mode key: card payments "
                "of live API keys will never complete (test-mode Stripe takes no money)",
            )
        self._public_url = public_url
        self._http = _HTTPXClient(timeout=settings.timeout_s)
        self._client = stripe.StripeClient(
            settings.secret_key,
            base_addresses={"api": settings.api_base},
            http_client=self._http,
            max_network_retries=0,
        )

    async def start(self, order: Order) -> Started:
        fallback = order.payment_url
        params: SessionCreateParams = {
            "mode": "payment",
            "client_reference_id": order.transaction_id,
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": order.currency.lower(),
                        "unit_amount": int(order.amount * KURUS),
                        "product_data": {"name": f"Order {order.external_ref}"},
                    },
                }
            ],
            "success_url": order.return_url or fallback,
            "cancel_url": order.cancel_url or fallback,
            "expires_at": session_expires_at(order.expires_ms, time.time()),
            "metadata": _ours(order),
            "payment_intent_data": {"metadata": _ours(order)},
        }
        if order.email:
            params["customer_email"] = order.email
        options: stripe.RequestOptions = {"idempotency_key": order.transaction_id}
        try:
            session = await self._client.v1.checkout.sessions.create_async(params, options)
        except stripe.StripeError as exc:
            raise ProviderError(_failure("could not open a checkout session", exc)) from exc
        if not session.id or not session.url:
            raise ProviderError("Stripe answered without a checkout session id or URL")
        return Started(reference=session.id, redirect_url=session.url)

    def parse(self, inbound: Inbound) -> list[Report]:
        header = inbound.headers.get(SIGNATURE_HEADER)
        if header is not None and not header.isascii():
            # The package compares with hmac.compare_digest, which raises for non-ASCII str.
            raise WebhookRejected("Stripe-Signature is not ASCII")
        try:
            stripe.WebhookSignature.verify_header(
                inbound.body, header, self._webhook_secret, TOLERANCE_S
            )
            event = json.loads(inbound.body, parse_float=Decimal)
        except stripe.SignatureVerificationError as exc:
            raise WebhookRejected(str(exc).split(" (")[0]) from None
        except (ValueError, RecursionError):  # not UTF-8, not JSON or too deep, though signed
            raise WebhookRejected("the body is not a JSON event") from None
        return [_report(event)]

    async def fetch(self, tracked: Tracked) -> Report | None:
        try:
            session = await self._client.v1.checkout.sessions.retrieve_async(tracked.reference)
        except stripe.StripeError as exc:
            raise ProviderError(_failure("could not read a checkout session", exc)) from exc
        data = session.to_dict()
        if data.get("livemode") is not True:
            return None  # a test-mode session is no payment; the deadline closes it
        outcome = SESSION_STATUS.get(str(data.get("status")))
        if data.get("status") == "complete":
            outcome = _session_completed(data)
        if outcome is None:
            return None
        status = f"{data.get('status')}/{data.get('payment_status')}"
        return _session_report(data, outcome, f"session:{tracked.reference}:{status}", status)

    async def cancel(self, reference: str) -> None:
        """Expire the open session, so a cancelled payment cannot be paid there any more."""
        try:
            await self._client.v1.checkout.sessions.expire_async(reference)
        except stripe.StripeError as exc:
            raise ProviderError(_failure("could not expire a checkout session", exc)) from exc

    async def check(self) -> str:
        try:
            await self._client.v1.checkout.sessions.list_async({"limit": 1})
        except stripe.APIConnectionError as exc:  # nothing answered: not a verdict on the key
            raise ProviderError(f"Stripe could not be reached ({type(exc).__name__})") from exc
        except stripe.StripeError as exc:
            raise ProviderError(_failure("refused the credentials", exc)) from exc
        if self._test_key:
            return (
                "the secret key can read checkout sessions, but it is a test-mode key: "
                "card payments of live API keys will never complete"
            )
        return "the secret key can read checkout sessions"

    async def close(self) -> None:
        await self._http.close_async()  # type: ignore[no-untyped-call]


def session_expires_at(expires_ms: int, now_s: float) -> int:
    """The session's expires_at for a payment due at `expires_ms`: Stripe takes 30 minutes to
    under 24 hours from when it creates the session, by its clock (wall time, not ours), so a
    deadline at either edge is moved inside by under a minute, which the reconciler's grace
    (two minutes) covers before it expires a payment on the clock. Moved to a 10-second step,
    so a start retried at once sends the same parameters (the idempotency key refuses others)."""
    low = math.ceil((now_s + EXPIRY_MIN_S) / EXPIRY_STEP_S) * EXPIRY_STEP_S
    high = math.floor((now_s + EXPIRY_MAX_S) / EXPIRY_STEP_S) * EXPIRY_STEP_S
    return min(max(expires_ms // 1000, low), high)


def _ours(order: Order) -> dict[str, str]:
    return {"transactionId": order.transaction_id, "externalRef": order.external_ref}


def _report(event: Any) -> Report:
    if not isinstance(event, dict) or not isinstance(event.get("id"), str):
        raise WebhookRejected("the body is not a Stripe event")
    checked_object(event)  # text that could not be stored
    kind = str(event.get("type", ""))
    if event.get("livemode") is not True and kind in EVENTS:
        log.warning("stripe.test_mode_event", event_id=event["id"], event_type=kind)
        return Report(key=event["id"], type=kind, outcome=None, reason=TEST_MODE)
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    if not isinstance(obj, dict) or kind not in EVENTS:
        return Report(key=event["id"], type=kind or "unknown", outcome=None)
    outcome = EVENTS[kind](obj)
    if kind == "charge.refunded":
        return Report(
            key=event["id"],
            type=kind,
            outcome=outcome,
            transaction_id=_our_id(obj),
            reference=_text(obj.get("payment_intent")),
        )
    return _session_report(obj, outcome, event["id"], kind)


def _session_report(session: Mapping[str, Any], outcome: str | None, key: str, kind: str) -> Report:
    total = session.get("amount_total")
    paid = Decimal(total) / KURUS if isinstance(total, int) and outcome == PAID else None
    currency = _text(session.get("currency"))
    return Report(
        key=key,
        type=kind,
        outcome=outcome,
        transaction_id=_our_id(session),
        reference=_text(session.get("id")),
        payment_ref=_text(session.get("payment_intent")),
        paid_amount=paid,
        paid_currency=currency.upper() if currency and paid is not None else None,
        reason=FAILURE_REASONS.get(kind),
    )


def _our_id(obj: Mapping[str, Any]) -> str | None:
    """Our transactionId, from the metadata only our secret key wrote on the session (and its
    PaymentIntent, whose charges carry it). Not client_reference_id alone: a payer sets that
    on any Payment Link of the account (`?client_reference_id=txn_…`), which would let a
    10 TRY link pay a 1000 TRY payment."""
    metadata = obj.get("metadata")
    return _text(metadata.get("transactionId")) if isinstance(metadata, dict) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _failure(what: str, exc: stripe.StripeError) -> str:
    """Why, without Stripe's message (it may echo request data): the kind and HTTP status."""
    status = f" (HTTP {exc.http_status})" if exc.http_status else ""
    return f"Stripe {what}: {type(exc).__name__}{status}"
