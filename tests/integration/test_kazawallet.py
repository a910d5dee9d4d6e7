"""Wallet payments through Kazawallet payment links (seeds 003/004), against a fake Kazawallet
on loopback that requires our x-api-key; webhooks carry the seed's secret. The webhook comes
once only: it is stored before it is answered, and applied even when applying it fails at
first. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from decimal import Decimal
from urllib.parse import urlencode

import pytest
from sqlalchemy import select
from structlog.testing import capture_logs

from tests.support.dbfaults import allow_payment_updates, refuse_payment_updates
from tests.support.providers import (
    KAZA_API_KEY,
    KAZA_API_SECRET,
    ProviderHarness,
    fake_kaza,
    kazawallet_settings,
    provider_harness,
)
from tests.support.servers import serve_asgi
from watcher.api.writewait import REQUEST_WRITE_WAIT_S
from watcher.callbacks.receiver import CallbackReceiver
from watcher.db.models import Payment, PaymentReport
from watcher.devchain import kazawallet as fake_kazawallet
from watcher.devchain.kazawallet import secret_of
from watcher.providers.reconcile import ProviderReconciler

RETURN_URL = "https://shop.example/orders/7/thanks"
JSON = {"Content-Type": "application/json"}


@pytest.fixture
async def kaza(db_url: str) -> AsyncIterator[ProviderHarness]:
    async with provider_harness(db_url, providers={"wallet": "kazawallet"}) as harness:
        yield harness


async def _wallet(kaza: ProviderHarness, **fields: object) -> tuple[str, str]:
    """A wallet payment: its transactionId and the payment link's order_id."""
    created = await kaza.pay("wallet", **fields)
    assert created.status_code == 200, created.text
    txn = created.json()["transactionId"]
    return txn, kaza.kazawallet.order_of(txn)


async def test_a_payment_link_is_made_for_our_id_and_its_webhook_completes_the_payment(
    kaza: ProviderHarness,
) -> None:
    receiver = CallbackReceiver(kaza.merchant.webhook_secret)
    async with serve_asgi(receiver) as hook:
        created = await kaza.pay("wallet", callbackUrl=f"{hook}/kasa", returnUrl=RETURN_URL)
        assert created.status_code == 200, created.text
        body = created.json()
        txn = body["transactionId"]
        [request] = kaza.kazawallet.requests
        assert request["answered"] == 200
        assert request["headers"]["x-api-key"] == KAZA_API_KEY
        assert request["json"] == {
            "amount": "1000",
            "currency": "TRY",
            "ref": txn,
            "redirectUrl": RETURN_URL,
            "email": "mehmet@example.com",
        }
        order_id = kaza.kazawallet.order_of(txn)
        assert body["provider"] == "kazawallet"
        assert body["redirectUrl"] == f"{kaza.kazawallet.base_url}/kazawallet/pay/{order_id}"
        assert (await kaza.status(txn))["provider"]["reference"] == order_id

        webhook = kaza.kazawallet.settle(order_id, "fulfilled")
        answer = await kaza.webhook("kazawallet", *webhook)
        assert (answer.status_code, answer.json()) == (200, {"received": True})
        status = await kaza.status(txn)
        assert (status["status"], status["provider"]["paidAmount"]) == ("completed", 1000)
        assert await kaza.deliver() == 1
    [payload] = receiver.verified()
    assert (payload["event"], payload["status"]) == ("payment.completed", "completed")
    assert payload["provider"] == {"name": "kazawallet", "reference": order_id, "paidAmount": 1000}


async def test_timed_out_links_expire_the_payment(kaza: ProviderHarness) -> None:
    txn, order_id = await _wallet(kaza, email=None, phone=None)
    assert "email" not in kaza.kazawallet.requests[0]["json"]
    assert kaza.kazawallet.requests[0]["json"]["redirectUrl"].endswith(f"/pay/{txn}")
    await kaza.webhook("kazawallet", *kaza.kazawallet.settle(order_id, "timed_out"))
    assert (await kaza.status(txn))["status"] == "expired"


async def test_a_wrong_secret_an_altered_amount_and_replays_change_nothing(
    kaza: ProviderHarness,
) -> None:
    txn, order_id = await _wallet(kaza)
    body, headers = kaza.kazawallet.settle(order_id, "fulfilled")
    fields = json.loads(body)

    forged = {**fields, "secret": secret_of("1000", order_id, KAZA_API_KEY, "not-the-secret")}
    wrong = await kaza.webhook("kazawallet", json.dumps(forged).encode(), headers)
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "UNAUTHORIZED"
    cheaper = {**fields, "amount": "1"}  # the secret covers the amount
    assert (
        await kaza.webhook("kazawallet", json.dumps(cheaper).encode(), headers)
    ).status_code == 401
    unsigned = {k: v for k, v in fields.items() if k != "secret"}
    assert (
        await kaza.webhook("kazawallet", json.dumps(unsigned).encode(), headers)
    ).status_code == 401
    assert (await kaza.status(txn))["status"] == "pending"
    async with kaza.services.sessions() as s:
        assert (await s.execute(select(PaymentReport))).first() is None

    assert (await kaza.webhook("kazawallet", body, headers)).status_code == 200
    # The secret covers neither status nor ref: a copy with either altered is a copy of the
    # link's one webhook, and changes nothing.
    flipped = {**fields, "status": "timed_out"}
    elsewhere = {**fields, "ref": "txn_" + "1" * 32}
    for copy in (body, json.dumps(flipped).encode(), json.dumps(elsewhere).encode()):
        resp = await kaza.webhook("kazawallet", copy, headers)
        assert (resp.status_code, resp.json()) == (200, {"received": True})
    assert (await kaza.status(txn))["status"] == "completed"
    assert [e["type"] for e in await kaza.events()] == ["payment.completed"]


def signed(order_id: str, amount: str, ref: str, status: str = "fulfilled") -> bytes:
    """A webhook with a good secret: Kazawallet's word about link `order_id` and `amount`
    (all the secret covers), with `ref` and `status` as anyone likes."""
    secret = secret_of(amount, order_id, KAZA_API_KEY, KAZA_API_SECRET)
    body = {"order_id": order_id, "secret": secret, "amount": amount, "ref": ref}
    return json.dumps({**body, "status": status, "currency": "TRY"}).encode()


async def _reports(kaza: ProviderHarness) -> list[tuple[str, str, str | None, str | None]]:
    async with kaza.services.sessions() as s:
        rows = (await s.execute(select(PaymentReport).order_by(PaymentReport.id))).scalars()  # type: ignore[arg-type]
        return [(r.key, r.result, r.transaction_id, r.payment_id) for r in rows]


async def test_a_signed_webhook_for_another_link_never_pays_a_payment(
    kaza: ProviderHarness,
) -> None:
    """The secret covers amount and order_id, not ref: a good secret for link pl_other paid
    10 says nothing about payment A, whose link is another one. Kept for ops, A untouched."""
    txn, link = await _wallet(kaza, amount=5000)
    assert (await kaza.status(txn))["provider"]["reference"] == link
    with capture_logs() as logged:
        resp = await kaza.webhook("kazawallet", signed("pl_other", "10", txn), JSON)
    assert (resp.status_code, resp.json()) == (200, {"received": True})
    status = await kaza.status(txn)
    assert (status["status"], status["provider"]["paidAmount"]) == ("pending", None)
    assert await kaza.events() == []
    assert await _reports(kaza) == [("link:pl_other", "unknown_reference", txn, None)]
    [warning] = [e for e in logged if e["event"] == "provider.report_not_its_link"]
    assert (warning["payment_id"], warning["reference"], warning["link"]) == (
        txn,
        "pl_other",
        link,
    )

    # its own link's webhook pays it
    await kaza.webhook("kazawallet", *kaza.kazawallet.settle(link, "fulfilled"))
    status = await kaza.status(txn)
    assert (status["status"], status["provider"]["paidAmount"]) == ("completed", 5000)


async def test_another_payments_webhook_naming_our_ref_counts_for_its_own_link_only(
    kaza: ProviderHarness,
) -> None:
    """A cheap payment's genuine webhook, its unsigned ref changed to a dear payment's id:
    it is the cheap link's webhook, and pays the cheap payment only (its copies are repeats)."""
    dear, _ = await _wallet(kaza, amount=5000, externalRef="ORD-DEAR")
    cheap, cheap_link = await _wallet(kaza, amount=500, externalRef="ORD-CHEAP")
    genuine, headers = kaza.kazawallet.settle(cheap_link, "fulfilled")
    altered = {**json.loads(genuine), "ref": dear}
    resp = await kaza.webhook("kazawallet", json.dumps(altered).encode(), headers)
    assert (resp.status_code, resp.json()) == (200, {"received": True})
    assert (await kaza.status(dear))["status"] == "pending"
    status = await kaza.status(cheap)
    assert (status["status"], status["provider"]["paidAmount"]) == ("completed", 500)
    assert (await kaza.webhook("kazawallet", genuine, headers)).status_code == 200
    assert [(e["type"], e["payment_id"]) for e in await kaza.events()] == [
        ("payment.completed", cheap)
    ]


async def test_a_link_paid_for_less_than_its_price_fails_and_for_more_completes(
    kaza: ProviderHarness,
) -> None:
    """A payment link is fixed-price: as for a card, less is not a payment of the order (it
    fails, saying what came, for the merchant to refund or settle); more pays it."""
    receiver = CallbackReceiver(kaza.merchant.webhook_secret)
    async with serve_asgi(receiver) as hook:
        short, short_link = await _wallet(
            kaza, amount=5000, externalRef="ORD-SHORT", callbackUrl=f"{hook}/kasa"
        )
        await kaza.webhook(
            "kazawallet", *kaza.kazawallet.settle(short_link, "fulfilled", amount="10")
        )
        status = await kaza.status(short)
        assert (status["status"], status["provider"]["paidAmount"]) == ("failed", 10)
        assert await kaza.deliver() == 1
    [payload] = receiver.verified()
    assert (payload["event"], payload["details"]) == (
        "payment.failed",
        {"reason": "amount_mismatch", "paidAmount": 10},
    )
    async with kaza.services.sessions() as s:
        row = (await s.execute(select(PaymentReport))).scalar_one()
    assert (row.result, row.reason) == ("applied", "amount_mismatch")

    more, more_link = await _wallet(kaza, amount=5000, externalRef="ORD-MORE")
    await kaza.webhook(
        "kazawallet", *kaza.kazawallet.settle(more_link, "fulfilled", amount="5000.50")
    )
    status = await kaza.status(more)
    assert (status["status"], status["provider"]["paidAmount"]) == (
        "completed",
        Decimal("5000.5"),
    )


async def test_a_start_answer_without_a_link_id_is_matched_by_ref_and_says_so(
    db_url: str,
) -> None:
    """No link id in the answer: the payment's reference is our transactionId, there is no
    link to hold a webhook to, and its ref is believed as before; the log says so."""
    fake = fake_kaza(id_key=None)
    async with provider_harness(
        db_url, providers={"wallet": "kazawallet"}, kazawallet=fake
    ) as kaza:
        txn, link = await _wallet(kaza)
        assert (await kaza.status(txn))["provider"]["reference"] == txn
        with capture_logs() as logged:
            await kaza.webhook("kazawallet", *fake.settle(link, "fulfilled"))
        status = await kaza.status(txn)
        assert (status["status"], status["provider"]["paidAmount"]) == ("completed", 1000)
    [warning] = [e for e in logged if e["event"] == "provider.report_matched_by_ref"]
    assert (warning["payment_id"], warning["reference"]) == (txn, link)


async def test_an_answer_with_a_record_id_beside_the_order_id_keeps_the_order_id(
    db_url: str,
) -> None:
    """The seed shows no answer to createPaymentLink, and its webhook names the link by
    `order_id`: an answer carrying both an `id` (a record of its own) and the `order_id` is
    held to the order_id, or the genuine webhook, sent once, would pay nothing."""
    fake = fake_kaza(id_key="order_id", record_id=True)
    async with provider_harness(
        db_url, providers={"wallet": "kazawallet"}, kazawallet=fake
    ) as kaza:
        txn, link = await _wallet(kaza)
        assert (await kaza.status(txn))["provider"]["reference"] == link
        assert (
            await kaza.webhook("kazawallet", *fake.settle(link, "fulfilled"))
        ).status_code == 200
        status = await kaza.status(txn)
        assert (status["status"], status["provider"]["paidAmount"]) == ("completed", 1000)


async def test_a_form_encoded_webhook_is_read_too(kaza: ProviderHarness) -> None:
    txn, order_id = await _wallet(kaza)
    fields = json.loads(kaza.kazawallet.settle(order_id, "fulfilled")[0])
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    resp = await kaza.webhook("kazawallet", urlencode(fields).encode(), form)
    assert resp.status_code == 200
    assert (await kaza.status(txn))["status"] == "completed"


async def test_a_number_amount_is_signed_as_php_prints_it(kaza: ProviderHarness) -> None:
    txn, order_id = await _wallet(kaza)
    fields = json.loads(kaza.kazawallet.settle(order_id, "fulfilled")[0])
    # JSON number 1000.50 is the PHP float 1000.5: the secret is over "1000.5"
    fields.update(
        amount=1000.50, secret=secret_of("1000.5", order_id, KAZA_API_KEY, KAZA_API_SECRET)
    )
    resp = await kaza.webhook("kazawallet", json.dumps(fields).encode(), {})
    assert resp.status_code == 200
    status = await kaza.status(txn)
    assert (status["status"], status["provider"]["paidAmount"]) == ("completed", Decimal("1000.5"))


async def test_the_webhook_sent_once_is_kept_when_applying_it_fails_and_applied_later(
    kaza: ProviderHarness,
) -> None:
    receiver = CallbackReceiver(kaza.merchant.webhook_secret)
    async with serve_asgi(receiver) as hook:
        txn, order_id = await _wallet(kaza, callbackUrl=f"{hook}/kasa")
        await refuse_payment_updates(kaza.services.engine)
        answer = await kaza.webhook("kazawallet", *kaza.kazawallet.settle(order_id, "fulfilled"))
        # stored durably, so answered: Kazawallet will not send it again
        assert (answer.status_code, answer.json()) == (200, {"received": True})
        async with kaza.services.sessions() as s:
            [row] = (await s.execute(select(PaymentReport))).scalars().all()
        assert (row.key, row.result, row.transaction_id) == (f"link:{order_id}", "received", txn)
        assert (await kaza.status(txn))["status"] == "pending"

        await allow_payment_updates(kaza.services.engine)
        s = kaza.services
        await ProviderReconciler(s.settings, s.sessions, s.providers, s.payments, s.clock).step()
        status = await kaza.status(txn)
        assert (status["status"], status["provider"]["paidAmount"]) == ("completed", 1000)
        assert await kaza.deliver() == 1
    [payload] = receiver.verified()
    assert (payload["event"], payload["transactionId"]) == ("payment.completed", txn)


@pytest.mark.parametrize("currency", ["USD", "USDT"])
async def test_another_currency_is_converted_at_the_locked_rate_and_back(
    db_url: str, currency: str
) -> None:
    fake = fake_kaza(link_key="paymentLink")
    async with fake_kazawallet.serve(fake) as url:
        providers = {
            "wallet": "kazawallet",
            "kazawallet": kazawallet_settings(url, currency=currency),
        }
        async with provider_harness(db_url, providers=providers, kazawallet=fake) as kaza:
            txn, order_id = await _wallet(kaza)  # 1000 TRY at 35.50 TRY per USD(T)
            sent = fake.requests[0]["json"]
            assert (sent["amount"], sent["currency"]) == ("28.17", currency)
            status = await kaza.status(txn)
            assert status["provider"]["rate"] == Decimal("35.5")
            await kaza.webhook("kazawallet", *fake.settle(order_id, "fulfilled"))
            status = await kaza.status(txn)
            assert (status["status"], status["provider"]["paidAmount"]) == ("completed", 1000)

            short_txn, short_order = await _wallet(kaza, externalRef="ORD-SHORT")
            await kaza.webhook("kazawallet", *fake.settle(short_order, "fulfilled", amount="28"))
            short = await kaza.status(short_txn)  # the link asked 28.17: less fails it
            assert (short["status"], short["provider"]["paidAmount"]) == ("failed", 994)  # x 35.50


async def test_a_wrong_api_key_is_502_with_kazawallets_message(db_url: str) -> None:
    fake = fake_kaza()
    async with fake_kazawallet.serve(fake) as url:
        providers = {"wallet": "kazawallet", "kazawallet": kazawallet_settings(url, api_key="kz_x")}
        async with provider_harness(db_url, providers=providers, kazawallet=fake) as kaza:
            failed = await kaza.pay("wallet")
            assert failed.status_code == 502
            assert failed.json()["error"] == {
                "code": "PROVIDER_ERROR",
                "message": "Kazawallet refused the payment link (HTTP 401): Invalid API key",
            }
            assert KAZA_API_SECRET not in failed.text
            async with kaza.services.sessions() as s:
                assert (await s.execute(select(Payment))).first() is None


@pytest.mark.parametrize("mode", ["down", "error", "refuse", "slow"])
async def test_kazawallet_failing_is_502_and_a_retry_with_the_same_ref_works(
    kaza: ProviderHarness, mode: str
) -> None:
    kaza.kazawallet.mode = mode  # type: ignore[assignment]
    kaza.kazawallet.delay_s = 5  # beyond the 2 s timeout
    failed = await kaza.pay("wallet", externalRef="ORD-RETRY")
    assert failed.status_code == 502, failed.text
    if mode == "refuse":
        assert failed.json()["error"]["message"] == (
            "Kazawallet refused the payment link (HTTP 422): "
            "Currency TRY is not enabled for this merchant"
        )
    kaza.kazawallet.mode = "ok"
    retried = await kaza.pay("wallet", externalRef="ORD-RETRY")
    assert retried.status_code == 200, retried.text


async def test_test_mode_wallet_payments_never_reach_kazawallet(kaza: ProviderHarness) -> None:
    created = (await kaza.pay("wallet", kaza.merchant.test_api_key)).json()
    assert created["provider"] == "sandbox"
    page = await kaza.http.get(f"{kaza.url}/sandbox/pay/{created['transactionId']}")
    assert "Sandbox wallet payment" in page.text
    done = await kaza.http.post(
        f"{kaza.url}/sandbox/pay/{created['transactionId']}/action", data={"action": "complete"}
    )
    assert done.status_code == 303
    status = await kaza.status(created["transactionId"], kaza.merchant.test_api_key)
    assert (status["status"], status["livemode"]) == ("completed", False)
    assert kaza.kazawallet.requests == []


HOLD_WRITE_LOCK = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], timeout=60, isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
print("held", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
"""


@pytest.mark.parametrize("db_kind", ["sqlite"])
async def test_the_webhook_sent_once_waits_out_a_write_lock_longer_than_a_requests_bound(
    kaza: ProviderHarness, db_url: str
) -> None:
    # API requests wait at most REQUEST_WRITE_WAIT_S for their turn to write, then 503. For
    # Kazawallet's webhook, sent once and never again, a 503 is a payment lost: it must wait
    # as long as a daemon loop does (SQLite's busy timeout).
    txn, order_id = await _wallet(kaza)
    path = db_url.removeprefix("sqlite+aiosqlite:///")
    holder = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLD_WRITE_LOCK, path,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert holder.stdin is not None and holder.stdout is not None
    try:
        assert await holder.stdout.readline() == b"held\n"
        sent = asyncio.create_task(
            kaza.webhook("kazawallet", *kaza.kazawallet.settle(order_id, "fulfilled"))
        )
        # the lock outlasts a request's bound, well within SQLite's busy timeout
        await asyncio.sleep(REQUEST_WRITE_WAIT_S + 2)
        holder.stdin.write(b"release\n")
        answer = await sent
    finally:
        if holder.returncode is None:
            holder.stdin.close()
        await holder.wait()
    assert (answer.status_code, answer.json()) == (200, {"received": True}), answer.text
    assert (await kaza.status(txn))["status"] == "completed"
