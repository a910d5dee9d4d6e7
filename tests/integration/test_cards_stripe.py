"""Card payments through Stripe Checkout, against a fake Stripe on loopback that speaks its wire
format; webhooks signed as Stripe signs them. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from sqlalchemy import select

from tests.support.callbacks import callback_rows
from tests.support.cards import SECRET_KEY, CardHarness, card_harness
from tests.support.servers import serve_asgi
from watcher.callbacks.receiver import CallbackReceiver
from watcher.db.models import Payment, PaymentReport


@pytest.fixture
async def cards(db_url: str) -> AsyncIterator[CardHarness]:
    async with card_harness(db_url) as harness:
        yield harness


async def test_a_card_payment_opens_a_checkout_session_named_by_our_id(cards: CardHarness) -> None:
    created = await cards.card(
        returnUrl="https://shop.example/ok", cancelUrl="https://shop.example/no"
    )
    assert created.status_code == 200, created.text
    body = created.json()
    txn = body["transactionId"]
    assert (body["success"], body["provider"]) == (True, "stripe")
    assert body["paymentUrl"].endswith(f"/pay/{txn}")
    [request] = cards.stripe.requests
    assert body["redirectUrl"] == cards.stripe.sessions[cards.session_of(created)]["url"]
    form, headers = request["form"], request["headers"]
    assert headers["authorization"] == f"Bearer {SECRET_KEY}"
    assert headers["idempotency-key"] == txn
    assert form["client_reference_id"] == txn and form["mode"] == "payment"
    item = form["line_items"][0]
    assert (item["price_data"]["currency"], item["price_data"]["unit_amount"]) == ("try", "100000")
    assert item["price_data"]["product_data"]["name"] == "Order ORD-CARD-1"
    assert form["customer_email"] == "ahmet@example.com"
    assert (form["success_url"], form["cancel_url"]) == (
        "https://shop.example/ok",
        "https://shop.example/no",
    )
    assert abs(int(form["expires_at"]) - (time.time() + 3600)) < 60
    assert form["metadata"]["transactionId"] == txn
    status = await cards.status(txn)
    assert status["status"] == "pending" and status["method"] == "card"
    assert status["provider"] == {
        "name": "stripe",
        "reference": cards.session_of(created),
        "paidAmount": None,
    }
    # the same request again: the same payment and session, Stripe not asked twice
    again = await cards.card(
        returnUrl="https://shop.example/ok", cancelUrl="https://shop.example/no"
    )
    assert again.json() == body and len(cards.stripe.requests) == 1


async def test_card_needs_email_and_phone(cards: CardHarness) -> None:
    no_email = await cards.card(email=None)
    assert no_email.status_code == 400 and no_email.json()["error"]["code"] == "INVALID_EMAIL"
    no_phone = await cards.card(phone=None)
    assert no_phone.status_code == 400 and no_phone.json()["error"]["code"] == "INVALID_PHONE"
    assert cards.stripe.requests == []


async def test_a_signed_completed_session_completes_the_payment_and_calls_back_once(
    cards: CardHarness,
) -> None:
    receiver = CallbackReceiver(cards.merchant.webhook_secret)
    async with serve_asgi(receiver) as hook:
        created = await cards.card(callbackUrl=f"{hook}/kasa")
        txn, sid = created.json()["transactionId"], cards.session_of(created)
        event = cards.stripe.complete(sid)
        first = await cards.webhook(event)
        assert (first.status_code, first.json()) == (200, {"received": True})
        again = await cards.webhook(event)  # Stripe retries: the same event once more
        assert (again.status_code, again.json()) == (200, {"received": True})
        status = await cards.status(txn)
        assert status["status"] == "completed"
        assert status["provider"] == {"name": "stripe", "reference": sid, "paidAmount": 1000}
        assert await cards.deliver() == 1
    [payload] = receiver.verified()
    assert (payload["event"], payload["status"], payload["livemode"]) == (
        "payment.completed",
        "completed",
        True,
    )
    assert payload["provider"] == {"name": "stripe", "reference": sid, "paidAmount": 1000}
    assert payload["amount"] == Decimal("1000") and "crypto" not in payload
    assert len(await callback_rows(cards.services.sessions)) == 1


async def test_tampered_or_stale_signatures_are_refused_and_change_nothing(
    cards: CardHarness,
) -> None:
    created = await cards.card()
    txn, sid = created.json()["transactionId"], cards.session_of(created)
    event = cards.stripe.complete(sid)
    body, headers = cards.stripe.signed(event, "whsec_local_fake_stripe_secret")
    tampered = body.replace(b'"amount_total":100000', b'"amount_total":1')
    url = f"{cards.url}/providers/stripe/webhook"
    resp = await cards.http.post(url, content=tampered, headers=headers)
    assert resp.status_code == 401 and resp.json()["error"]["code"] == "UNAUTHORIZED"
    stale = await cards.webhook(event, timestamp=int(time.time()) - 301)
    assert stale.status_code == 401
    wrong = await cards.webhook(event, secret="whsec_someone_else")
    assert wrong.status_code == 401
    unsigned = await cards.http.post(url, content=body)
    assert unsigned.status_code == 401
    assert (await cards.status(txn))["status"] == "pending"
    async with cards.services.sessions() as s:
        assert (await s.execute(select(PaymentReport))).first() is None


@pytest.mark.parametrize("mode", ["down", "error", "refuse", "slow"])
async def test_stripe_failing_is_502_and_a_retry_with_the_same_ref_works(
    db_url: str, mode: str
) -> None:
    async with card_harness(db_url) as cards:
        cards.stripe.mode = mode  # type: ignore[assignment]
        cards.stripe.delay_s = 5  # beyond the 2 s timeout
        failed = await cards.card(externalRef="ORD-RETRY")
        assert failed.status_code == 502, failed.text
        assert failed.json()["error"]["code"] == "PROVIDER_ERROR"
        assert SECRET_KEY not in failed.text
        async with cards.services.sessions() as s:
            assert (await s.execute(select(Payment))).first() is None
        cards.stripe.mode = "ok"
        retried = await cards.card(externalRef="ORD-RETRY")
        assert retried.status_code == 200, retried.text
        assert retried.json()["provider"] == "stripe"


async def test_a_webhook_that_never_came_is_reconciled_before_expiry(cards: CardHarness) -> None:
    created = await cards.card()
    txn, sid = created.json()["transactionId"], cards.session_of(created)
    cards.stripe.complete(sid)  # paid on Stripe; the webhook is lost
    reconciler = _reconciler(cards, later_s=301)
    assert await reconciler.step() == 1
    status = await cards.status(txn)
    assert status["status"] == "completed" and status["provider"]["paidAmount"] == 1000
    assert await reconciler.step() == 0  # asked again only after another interval


async def test_expired_sessions_expire_and_refunds_refund(cards: CardHarness) -> None:
    a = await cards.card(externalRef="ORD-A")
    b = await cards.card(externalRef="ORD-B")
    assert (await cards.webhook(cards.stripe.expire(cards.session_of(a)))).status_code == 200
    assert (await cards.status(a.json()["transactionId"]))["status"] == "expired"
    sid = cards.session_of(b)
    await cards.webhook(cards.stripe.complete(sid))
    assert (await cards.webhook(cards.stripe.refund(sid))).status_code == 200
    assert (await cards.status(b.json()["transactionId"]))["status"] == "refunded"


async def test_unknown_payments_and_event_types_are_answered_and_kept(cards: CardHarness) -> None:
    stranger = cards.stripe.event(
        "checkout.session.completed",
        {
            "id": "cs_test_elsewhere",
            "client_reference_id": "txn_" + "0" * 32,
            "payment_status": "paid",
            "livemode": True,
        },
    )
    assert (await cards.webhook(stranger)).json() == {"received": True}
    other = cards.stripe.event("customer.created", {"id": "cus_1", "object": "customer"})
    assert (await cards.webhook(other)).json() == {"received": True}
    async with cards.services.sessions() as s:
        rows = {r.key: r.result for r in (await s.execute(select(PaymentReport))).scalars()}
    assert rows == {stranger["id"]: "unknown_reference", other["id"]: "ignored"}


async def test_a_cancelled_card_payment_expires_its_session(cards: CardHarness) -> None:
    created = await cards.card()
    txn, sid = created.json()["transactionId"], cards.session_of(created)
    resp = await cards.http.post(f"{cards.url}/api/payment/{txn}/cancel", headers=cards.headers())
    assert resp.status_code == 200 and resp.json()["transaction"]["status"] == "cancelled"
    assert cards.stripe.sessions[sid]["status"] == "expired"


async def test_test_mode_card_payments_never_reach_stripe(cards: CardHarness) -> None:
    created = await cards.card(cards.merchant.test_api_key)
    body = created.json()
    assert body["provider"] == "sandbox"
    assert body["redirectUrl"].endswith(f"/sandbox/pay/{body['transactionId']}")
    assert cards.stripe.requests == []


def _reconciler(cards: CardHarness, *, later_s: int):  # type: ignore[no-untyped-def]
    from watcher.providers.reconcile import ProviderReconciler

    s = cards.services
    start = s.clock()
    return ProviderReconciler(
        s.settings, s.sessions, s.providers, s.payments, lambda: start + later_s * 1000
    )


async def test_after_its_deadline_a_session_is_asked_about_and_never_expired_blind(
    cards: CardHarness,
) -> None:
    expired = await cards.card(externalRef="ORD-EXP")
    unanswered = await cards.card(externalRef="ORD-DOWN")
    cards.stripe.expire(cards.session_of(expired))  # Stripe expired it; the webhook is lost
    past_deadline = 3600 + 121
    cards.stripe.mode = "down"
    assert await _reconciler(cards, later_s=past_deadline).step() == 2
    for created in (expired, unanswered):  # Stripe cannot be asked: nothing is decided
        assert (await cards.status(created.json()["transactionId"]))["status"] == "pending"
    cards.stripe.mode = "ok"
    assert await _reconciler(cards, later_s=past_deadline + 301).step() == 2
    for created in (expired, unanswered):  # asked again: expired, and not paid
        assert (await cards.status(created.json()["transactionId"]))["status"] == "expired"


async def test_concurrent_identical_card_creates_make_one_payment_and_one_session(
    cards: CardHarness,
) -> None:
    answers = await asyncio.gather(*(cards.card(externalRef="ORD-RACE") for _ in range(10)))
    ok = [a.json() for a in answers if a.status_code == 200]
    assert ok and all(a.status_code in (200, 502) for a in answers)
    assert len({a["transactionId"] for a in ok}) == 1
    assert len({a["redirectUrl"] for a in ok}) == 1
    assert len(cards.stripe.sessions) == 1
    async with cards.services.sessions() as s:
        assert len((await s.execute(select(Payment))).scalars().all()) == 1
