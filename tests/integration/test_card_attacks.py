"""Card payments attacked: by a payer who holds another way into the operator's Stripe
account, by a merchant who acts in the wrong order, by a Stripe that answers oddly. Real
HTTP (the fake Stripe on loopback), SQLite and PostgreSQL."""

from __future__ import annotations

import io
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal

import httpx
import pytest
import structlog
from sqlalchemy import select, update
from sqlmodel import col

from tests.integration.conftest import ApiHarness
from tests.support.cards import WEBHOOK_SECRET, CardHarness, card_harness
from tests.support.servers import serve_asgi
from watcher.api.app import create_app
from watcher.callbacks.receiver import CallbackReceiver
from watcher.config import LogSettings, ProvidersSettings, StripeSettings
from watcher.db.models import Payment, PaymentReport
from watcher.devchain import stripe as fake_stripe
from watcher.devchain.stripe import FakeStripe
from watcher.errors import ProviderError
from watcher.logs import configure_logging
from watcher.providers.base import Order
from watcher.providers.reconcile import ProviderReconciler
from watcher.providers.stripe import StripeProvider
from watcher.services import build_services


@pytest.fixture
async def cards(db_url: str) -> AsyncIterator[CardHarness]:
    async with card_harness(db_url) as harness:
        yield harness


async def test_a_method_that_is_off_is_named_before_the_fields_it_would_need(
    api: ApiHarness,
) -> None:
    """Auth, body shape, provider enabled, then fields: a client fixing the amount and the
    email of a card payment on a server without cards would fix them in vain."""
    resp = await api.create(provider="card", amount=1, email="not-an-address")
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["code"] == "INVALID_REQUEST" and "not enabled" in error["message"], error


async def test_a_payment_link_session_naming_our_id_does_not_pay_the_payment(
    cards: CardHarness,
) -> None:
    """Stripe lets a payer set client_reference_id on a Payment Link (`?client_reference_id=`)
    or a client-only Checkout: a 10 TRY link of the same Stripe account, opened with a 1000 TRY
    payment's id, must not pay that payment. Only a session we made (our metadata) counts."""
    created = await cards.card()
    txn = created.json()["transactionId"]
    link = cards.stripe.event(
        "checkout.session.completed",
        {
            "id": "cs_live_from_a_payment_link",
            "object": "checkout.session",
            "client_reference_id": txn,
            "payment_link": "plink_1",
            "status": "complete",
            "payment_status": "paid",
            "amount_total": 1000,
            "currency": "try",
            "metadata": {},
            "payment_intent": "pi_link",
            "livemode": True,
        },
    )
    assert (await cards.webhook(link)).status_code == 200
    status = await cards.status(txn)
    assert status["status"] == "pending", status
    assert status["provider"]["paidAmount"] is None
    async with cards.services.sessions() as s:
        row = (await s.execute(select(PaymentReport))).scalar_one()
    assert row.result == "unknown_reference"


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [("amount_total", 99_999, "amount_mismatch"), ("currency", "usd", "currency_mismatch")],
)
async def test_a_session_paid_for_less_or_in_another_currency_never_completes_the_payment(
    cards: CardHarness, field: str, value: object, reason: str
) -> None:
    """paidAmount is what Stripe says was paid; a payment paid short is not completed in full
    silently: it fails, saying why and what came, for the merchant to refund or settle."""
    receiver = CallbackReceiver(cards.merchant.webhook_secret)
    async with serve_asgi(receiver) as hook:
        created = await cards.card(callbackUrl=f"{hook}/kasa")
        txn, sid = created.json()["transactionId"], cards.session_of(created)
        event = cards.stripe.complete(sid)
        event["data"]["object"][field] = value
        assert (await cards.webhook(event)).status_code == 200
        status = await cards.status(txn)
        assert await cards.deliver() == 1
    assert status["status"] == "failed", status
    [payload] = receiver.verified()
    assert (payload["event"], payload["details"]["reason"]) == ("payment.failed", reason)
    if field == "amount_total":
        assert Decimal(str(status["provider"]["paidAmount"])) == Decimal("999.99")
        assert payload["details"]["paidAmount"] == Decimal("999.99")
    else:
        assert status["provider"]["paidAmount"] is None
        assert payload["details"]["paidCurrency"] == "USD"


async def test_a_stripe_test_mode_event_never_pays_a_live_payment(cards: CardHarness) -> None:
    """Card payments of live keys are real money; Stripe's test mode takes none (4242… pays
    anything there). A daemon given a Stripe test key by mistake, or a test-mode event
    signed by a shared secret, must not complete a live payment."""
    created = await cards.card()
    txn, sid = created.json()["transactionId"], cards.session_of(created)
    event = cards.stripe.complete(sid)
    event["livemode"] = False
    event["data"]["object"]["livemode"] = False
    assert (await cards.webhook(event)).status_code == 200
    status = await cards.status(txn)
    assert (status["status"], status["livemode"]) == ("pending", True), status
    cards.stripe.sessions[sid]["livemode"] = False  # and Stripe, asked, says the same
    assert await _reconciler(cards, later_s=301).step() == 1
    assert (await cards.status(txn))["status"] == "pending"


def _reconciler(cards: CardHarness, *, later_s: int) -> ProviderReconciler:
    s = cards.services
    start = s.clock()
    return ProviderReconciler(
        s.settings, s.sessions, s.providers, s.payments, lambda: start + later_s * 1000
    )


async def _cancel(cards: CardHarness, txn: str) -> httpx.Response:
    return await cards.http.post(f"{cards.url}/api/payment/{txn}/cancel", headers=cards.headers())


async def test_a_card_payment_paid_before_the_cancel_completes_instead(
    cards: CardHarness,
) -> None:
    """The payer paid on Stripe; its webhook is still on its way when the merchant cancels.
    Cancelling would leave a paid order 'cancelled' (and the money a 'late' surprise): the
    session cannot be expired any more, Stripe says it is paid, so the payment completes and
    the cancel is refused."""
    created = await cards.card()
    txn, sid = created.json()["transactionId"], cards.session_of(created)
    cards.stripe.complete(sid)  # paid; the webhook has not come yet
    resp = await _cancel(cards, txn)
    assert resp.status_code == 409, resp.text
    assert resp.json()["error"]["code"] == "INVALID_STATE"
    status = await cards.status(txn)
    assert status["status"] == "completed" and status["provider"]["paidAmount"] == 1000


async def test_a_card_payment_is_not_cancelled_while_stripe_cannot_close_its_session(
    cards: CardHarness,
) -> None:
    """A 'cancelled' payment whose session is still open can still be paid: while Stripe
    cannot be reached the cancel is 502 and the payment stays as it was, for a retry."""
    created = await cards.card()
    txn, sid = created.json()["transactionId"], cards.session_of(created)
    cards.stripe.mode = "down"
    resp = await _cancel(cards, txn)
    assert resp.status_code == 502, resp.text
    assert resp.json()["error"]["code"] == "PROVIDER_ERROR"
    assert (await cards.status(txn))["status"] == "pending"
    assert cards.stripe.sessions[sid]["status"] == "open"
    cards.stripe.mode = "ok"
    again = await _cancel(cards, txn)
    assert again.status_code == 200 and again.json()["transaction"]["status"] == "cancelled"
    assert cards.stripe.sessions[sid]["status"] == "expired"


async def test_a_payment_whose_start_never_finished_is_not_opened_after_it_closed(
    cards: CardHarness,
) -> None:
    """The process died between storing a payment and opening its session (or the clean-up
    after a failed start could not reach the database). Past its deadline the reconciler
    expires it; a retry with its externalRef then gets that payment as it is, and no
    provider is asked to open a payable page for a closed payment."""
    created = await cards.card(externalRef="ORD-CRASH")
    txn = created.json()["transactionId"]
    async with cards.services.sessions() as s, s.begin():
        await s.execute(
            update(Payment)
            .where(col(Payment.id) == txn)
            .values(provider_ref=None, redirect_url=None)  # as if the start never came back
        )
    assert await _reconciler(cards, later_s=3600 + 121).step() == 1
    assert (await cards.status(txn))["status"] == "expired"
    asked = len(cards.stripe.requests)
    retried = await cards.card(externalRef="ORD-CRASH")
    assert retried.status_code == 200, retried.text
    assert retried.json()["transactionId"] == txn
    assert retried.json()["redirectUrl"].endswith(f"/pay/{txn}")
    assert len(cards.stripe.requests) == asked  # Stripe was not asked to open it


async def test_stripe_s_own_chatter_stays_out_of_the_log() -> None:
    """The stripe package logs every request at INFO with Stripe's error text (which can echo
    what was sent: an email, an order), and form bodies and whole answers at DEBUG. The
    adapter keeps that text out of its errors; the log must not carry it either."""
    stream = io.StringIO()
    root = logging.getLogger()
    level = root.level
    configure_logging(LogSettings(level="DEBUG"), stream)
    try:
        async with fake_stripe.serve(FakeStripe(mode="refuse")) as url:
            settings = StripeSettings(
                secret_key="sk_live_51Chatter", webhook_secret="whsec_x", api_base=url
            )
            adapter = StripeProvider(settings, "http://127.0.0.1:1")
            order = Order(
                "txn_chatter",
                "ORD-CHAT",
                "card",
                Decimal(1000),
                "TRY",
                "Ahmet Yılmaz",
                "ahmet@example.com",
                "+905551234567",
                None,
                None,
                None,
                "http://127.0.0.1:1/pay/txn_chatter",
                int(time.time() * 1000) + 3_600_000,
            )
            with pytest.raises(ProviderError):
                await adapter.start(order)
            await adapter.close()
    finally:
        structlog.reset_defaults()
        for handler in [h for h in root.handlers if h.get_name() == "watcher.logs"]:
            root.removeHandler(handler)
        root.setLevel(level)
    logged = stream.getvalue()
    assert "Invalid currency" not in logged and "ahmet@example.com" not in logged, logged


@asynccontextmanager
async def _restarted(cards: CardHarness, providers: ProvidersSettings) -> AsyncIterator[str]:
    """The daemon started again on the same database with other [providers] settings."""
    settings = cards.services.settings.model_copy(update={"providers": providers})
    async with build_services(settings) as services, serve_asgi(create_app(services)) as url:
        yield url


async def test_card_payments_still_open_when_cards_are_switched_off_are_not_lost(
    cards: CardHarness,
) -> None:
    """The operator turns card payments off (`card` unset) while a payer is on Stripe's page,
    keeping the Stripe keys. The payer's money must still complete the payment: the Stripe
    webhook is still received, not answered 404 until Stripe gives up."""
    created = await cards.card()
    txn, sid = created.json()["transactionId"], cards.session_of(created)
    stripe_settings = cards.services.settings.providers.stripe
    async with _restarted(cards, ProvidersSettings(stripe=stripe_settings)) as url:
        off = await cards.card(externalRef="ORD-AFTER")
        body, headers = cards.stripe.signed(cards.stripe.complete(sid), WEBHOOK_SECRET)
        hook = await cards.http.post(
            f"{url}/providers/stripe/webhook", content=body, headers=headers
        )
    assert off.status_code == 200  # the old process; the new one takes no card payments
    assert hook.status_code == 200, hook.text
    assert (await cards.status(txn))["status"] == "completed"


async def test_a_payment_whose_provider_is_no_longer_configured_is_not_expired_blind(
    cards: CardHarness,
) -> None:
    """With Stripe's settings gone nobody can ask Stripe whether it was paid; expiring it on
    the clock would tell the merchant 'not paid' for money Stripe may hold."""
    created = await cards.card()
    txn = created.json()["transactionId"]
    settings = cards.services.settings.model_copy(update={"providers": ProvidersSettings()})
    async with build_services(settings) as services:
        start = services.clock()
        reconciler = ProviderReconciler(
            settings,
            services.sessions,
            services.providers,
            services.payments,
            lambda: start + (3600 + 121) * 1000,
        )
        await reconciler.step()
    assert (await cards.status(txn))["status"] == "pending"


async def test_a_refund_that_arrives_before_the_payment_is_not_lost(cards: CardHarness) -> None:
    """Stripe does not keep its events in order: after an outage its retries of a refund can
    come before its retries of the payment. The refund must not be dropped as 'nothing to
    refund' (the merchant would ship a refunded order): it waits for the payment."""
    receiver = CallbackReceiver(cards.merchant.webhook_secret)
    async with serve_asgi(receiver) as hook:
        created = await cards.card(callbackUrl=f"{hook}/kasa")
        txn, sid = created.json()["transactionId"], cards.session_of(created)
        paid = cards.stripe.complete(sid)
        refund = cards.stripe.refund(sid)
        assert (await cards.webhook(refund)).status_code == 200
        assert (await cards.status(txn))["status"] == "pending"
        assert (await cards.webhook(paid)).status_code == 200
        assert (await cards.status(txn))["status"] == "refunded"
        assert await cards.deliver() == 2
    events = [(p["event"], p["status"]) for p in receiver.verified()]
    assert events == [("payment.completed", "completed"), ("payment.refunded", "refunded")]


@pytest.mark.parametrize("ttl_min", [30, 1440])
async def test_card_payments_open_at_the_edges_of_the_session_lifetime(
    db_url: str, ttl_min: int
) -> None:
    """Stripe takes expires_at from 30 minutes to under 24 hours after it creates the
    session, by its own clock. providers.session_ttl_min allows 30 and 1440: at either edge
    a deadline computed here, a moment earlier, would be refused and every card payment 502."""
    async with card_harness(db_url, providers={"session_ttl_min": ttl_min}) as cards:
        created = await cards.card()
        assert created.status_code == 200, created.text
        expires = int(cards.stripe.requests[0]["form"]["expires_at"])
        assert 30 * 60 <= expires - time.time() < 24 * 3600
