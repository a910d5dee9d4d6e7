"""Card, bank and wallet payments through AcidPanel (seed 001), against a fake AcidPanel on
loopback that checks X-Hash exactly as the seed defines it and refuses wrong ones; callbacks
signed with the seed's formula. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from sqlalchemy import select

from tests.support.callbacks import callback_rows
from tests.support.providers import (
    ACID_API_KEY,
    ACID_CREDENTIAL_KEY,
    ACID_SECRET_KEY,
    ProviderHarness,
    acidpanel_settings,
    fake_acid,
    provider_harness,
)
from tests.support.servers import serve_asgi
from watcher.callbacks.receiver import CallbackReceiver
from watcher.db.models import Payment, PaymentReport
from watcher.devchain import acidpanel as fake_acidpanel
from watcher.devchain.acidpanel import sha256
from watcher.providers.reconcile import ProviderReconciler

ALL_ACID = {"card": "acidpanel", "bank": "acidpanel", "wallet": "acidpanel"}


@pytest.fixture
async def acid(db_url: str) -> AsyncIterator[ProviderHarness]:
    async with provider_harness(db_url, providers=ALL_ACID) as harness:
        yield harness


def _tracking(created_body: dict[str, object], acid: ProviderHarness) -> str:
    url = str(created_body["redirectUrl"])
    [tracking] = [t for t in acid.acidpanel.payments if url.endswith(t)]
    return tracking


async def test_a_card_payment_is_signed_as_the_seed_says_and_completes_on_its_callback(
    acid: ProviderHarness,
) -> None:
    receiver = CallbackReceiver(acid.merchant.webhook_secret)
    async with serve_asgi(receiver) as hook:
        created = await acid.pay(
            "card", callbackUrl=f"{hook}/kasa", metadata={"userId": "11420076"}
        )
        assert created.status_code == 200, created.text
        body = created.json()
        txn = body["transactionId"]
        assert (body["provider"], body["paymentUrl"].endswith(f"/pay/{txn}")) == (
            "acidpanel",
            True,
        )
        [request] = acid.acidpanel.requests
        assert (request["path"], request["answered"]) == ("/credit-card/payment", 200)
        headers, sent = request["headers"], request["json"]
        stamp = headers["x-timestamp"]
        assert abs(int(stamp) - time.time()) < 5
        assert headers["x-api-key"] == ACID_API_KEY
        assert headers["x-hash"] == sha256(ACID_API_KEY + ACID_SECRET_KEY + stamp)
        assert "x-credential-key" not in headers
        assert sent == {
            "credential_key": ACID_CREDENTIAL_KEY,
            "username": "11420076",
            "user_id": "11420076",
            "firstname": "Mehmet Ali",
            "lastname": "Yılmaz",
            "email": "mehmet@example.com",
            "phone": "+905551234567",
            "amount": 1000,
            "description": "Order ORD-CARD-1",
        }
        tracking = _tracking(body, acid)
        assert tracking.startswith("CC-")
        assert body["redirectUrl"] == f"{acid.acidpanel.base_url}/deposit/track/{tracking}"
        status = await acid.status(txn)
        assert status["provider"] == {
            "name": "acidpanel",
            "reference": tracking,
            "paidAmount": None,
        }

        answer = await acid.webhook("acidpanel", *acid.acidpanel.settle(tracking, "success"))
        assert (answer.status_code, answer.json()) == (200, {"received": True})
        status = await acid.status(txn)
        assert status["status"] == "completed"
        assert status["provider"]["paidAmount"] == 1000
        assert await acid.deliver() == 1
    [payload] = receiver.verified()
    assert (payload["event"], payload["status"], payload["livemode"]) == (
        "payment.completed",
        "completed",
        True,
    )
    assert payload["provider"] == {"name": "acidpanel", "reference": tracking, "paidAmount": 1000}
    # the same payment again: the same answer, AcidPanel not asked twice
    again = await acid.pay("card", callbackUrl=f"{hook}/kasa", metadata={"userId": "11420076"})
    assert again.json() == body and len(acid.acidpanel.requests) == 1


@pytest.mark.parametrize(
    ("bank_method", "path", "prefix"),
    [
        ("manual", "/start-manual-deposit", "MAN-"),
        ("eiban", "/start-eiban-deposit", "EIBAN-"),
        ("third-party", "/third-party/bank/start-deposit", "TPBD-"),
    ],
)
async def test_bank_deposits_take_the_configured_route_and_the_approved_amount(
    db_url: str, bank_method: str, path: str, prefix: str
) -> None:
    fake = fake_acid()
    async with fake_acidpanel.serve(fake) as url:
        providers = {
            "bank": "acidpanel",
            "acidpanel": acidpanel_settings(url, bank_method=bank_method),
        }
        async with provider_harness(db_url, providers=providers, acidpanel=fake) as acid:
            receiver = CallbackReceiver(acid.merchant.webhook_secret)
            async with serve_asgi(receiver) as hook:
                created = await acid.pay("bank", callbackUrl=f"{hook}/kasa", email=None)
                assert created.status_code == 200, created.text
                txn = created.json()["transactionId"]
                [request] = fake.requests
                headers = request["headers"]
                assert request["path"] == path and request["answered"] == 200
                assert headers["x-credential-key"] == ACID_CREDENTIAL_KEY
                assert headers["x-hash"] == sha256(
                    ACID_API_KEY + ACID_SECRET_KEY + ACID_CREDENTIAL_KEY + headers["x-timestamp"]
                )
                assert request["json"] == {
                    "fullname": "Mehmet Ali Yılmaz",
                    "username": "ORD-BANK-1",  # no metadata.userId: the externalRef
                    "user_id": "ORD-BANK-1",
                    "amount": 1000,
                }
                tracking = _tracking(created.json(), acid)
                assert tracking.startswith(prefix)
                # the payer edited the amount on AcidPanel's page; the dealer approved 950
                settled = fake.settle(tracking, "completed", amount=Decimal("950.00"))
                assert (await acid.webhook("acidpanel", *settled)).status_code == 200
                status = await acid.status(txn)
                assert (status["status"], status["provider"]["paidAmount"]) == ("completed", 950)
                assert await acid.deliver() == 1
            [payload] = receiver.verified()
            assert payload["status"] == "completed" and payload["amount"] == Decimal("1000")
            assert payload["provider"]["paidAmount"] == Decimal("950")


async def test_wallet_deposits_are_cancelled_or_expired_by_their_callbacks(
    acid: ProviderHarness,
) -> None:
    a = (await acid.pay("wallet", externalRef="ORD-W-1")).json()
    b = (await acid.pay("wallet", externalRef="ORD-W-2")).json()
    assert [r["path"] for r in acid.acidpanel.requests] == ["/third-party/wallet/start-deposit"] * 2
    assert all(
        r["headers"]["x-credential-key"] == ACID_CREDENTIAL_KEY for r in acid.acidpanel.requests
    )
    for created, status, ours in ((a, "canceled", "cancelled"), (b, "expired", "expired")):
        tracking = _tracking(created, acid)
        assert tracking.startswith("TPWD-")
        resp = await acid.webhook("acidpanel", *acid.acidpanel.settle(tracking, status))
        assert resp.status_code == 200
        assert (await acid.status(created["transactionId"]))["status"] == ours


async def test_card_failures_keep_the_providers_reason_and_refunds_refund(
    acid: ProviderHarness,
) -> None:
    declined = (await acid.pay("card", externalRef="ORD-DECLINED")).json()
    error = ("INSUFFICIENT_FUNDS", "Card declined - insufficient funds")
    callback = acid.acidpanel.settle(_tracking(declined, acid), "failed", error=error)
    assert (await acid.webhook("acidpanel", *callback)).status_code == 200
    [event] = await acid.events()
    assert (event["type"], event["data"]["status"]) == ("payment.failed", "failed")
    assert event["data"]["details"]["reason"] == (
        "INSUFFICIENT_FUNDS: Card declined - insufficient funds"
    )

    refunded = (await acid.pay("card", externalRef="ORD-REFUNDED")).json()
    tracking = _tracking(refunded, acid)
    for status in ("success", "refunded"):
        await acid.webhook("acidpanel", *acid.acidpanel.settle(tracking, status))
    assert (await acid.status(refunded["transactionId"]))["status"] == "refunded"


async def test_wrong_hash_stale_timestamp_and_replay_change_nothing(acid: ProviderHarness) -> None:
    created = (await acid.pay("bank")).json()
    txn, tracking = created["transactionId"], _tracking(created, acid)
    body, headers = acid.acidpanel.settle(tracking, "completed")

    forged = {
        **headers,
        "X-Hash": sha256(
            ACID_API_KEY + "not-the-secret" + tracking + "completed" + headers["X-Timestamp"]
        ),
    }
    wrong = await acid.webhook("acidpanel", body, forged)
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "UNAUTHORIZED"
    # the hash covers tracking_code and status: another status with the same hash is refused
    flipped = body.replace(b'"status":"completed"', b'"status":"canceled"')
    assert (await acid.webhook("acidpanel", flipped, headers)).status_code == 401
    stale_body, stale_headers = acid.acidpanel.callback(
        tracking, "completed", timestamp=int(time.time()) - 301
    )
    stale = await acid.webhook("acidpanel", stale_body, stale_headers)
    assert stale.status_code == 401
    unsigned = await acid.webhook("acidpanel", body, {"Content-Type": "application/json"})
    assert unsigned.status_code == 401
    assert (await acid.status(txn))["status"] == "pending"
    async with acid.services.sessions() as s:
        assert (await s.execute(select(PaymentReport))).first() is None

    first = await acid.webhook("acidpanel", body, headers)
    replay = await acid.webhook("acidpanel", body, headers)
    again_later = await acid.webhook("acidpanel", *acid.acidpanel.callback(tracking, "completed"))
    assert [r.status_code for r in (first, replay, again_later)] == [200, 200, 200]
    assert [e["type"] for e in await acid.events()] == ["payment.completed"]
    async with acid.services.sessions() as s:
        rows = (await s.execute(select(PaymentReport))).scalars().all()
    assert [(r.key, r.result) for r in rows] == [(f"{tracking}:completed", "applied")]


@pytest.mark.parametrize(
    ("settings", "shown"),
    [
        ({"secret_key": "sk_wrong"}, "AcidPanel refused the card payment (HTTP 401): Invalid hash"),
        ({"api_key": "ak_unknown"}, "(HTTP 401): Invalid API key"),
        ({"credential_key": "site-other"}, "Invalid credential key"),
    ],
)
async def test_refused_credentials_are_502_with_the_providers_message(
    db_url: str, settings: dict[str, object], shown: str
) -> None:
    fake = fake_acid()
    async with fake_acidpanel.serve(fake) as url:
        providers = {"card": "acidpanel", "acidpanel": acidpanel_settings(url, **settings)}
        async with provider_harness(db_url, providers=providers, acidpanel=fake) as acid:
            failed = await acid.pay("card")
            assert failed.status_code == 502
            error = failed.json()["error"]
            assert error["code"] == "PROVIDER_ERROR" and shown in error["message"], error
            for secret in ("sk_wrong", ACID_SECRET_KEY, ACID_CREDENTIAL_KEY):
                assert secret not in failed.text
            async with acid.services.sessions() as s:
                assert (await s.execute(select(Payment))).first() is None


async def test_a_foreign_credential_key_on_a_deposit_gets_acidpanels_turkish_refusal(
    db_url: str,
) -> None:
    fake = fake_acid()
    async with fake_acidpanel.serve(fake) as url:
        providers = {
            "bank": "acidpanel",
            "acidpanel": acidpanel_settings(url, credential_key="site-other"),
        }
        async with provider_harness(db_url, providers=providers, acidpanel=fake) as acid:
            failed = await acid.pay("bank")
    assert failed.status_code == 502
    assert failed.json()["error"]["message"] == (
        "AcidPanel refused the bank deposit (HTTP 403): Yetkisiz Credential Key: "
        "Bu credential key sizin provider hesabınıza ait değil"
    )


@pytest.mark.parametrize("mode", ["down", "error", "refuse", "slow"])
async def test_acidpanel_failing_is_502_and_a_retry_with_the_same_ref_works(
    acid: ProviderHarness, mode: str
) -> None:
    acid.acidpanel.mode = mode  # type: ignore[assignment]
    acid.acidpanel.delay_s = 5  # beyond the 2 s timeout
    failed = await acid.pay("card", externalRef="ORD-RETRY")
    assert failed.status_code == 502, failed.text
    assert failed.json()["error"]["code"] == "PROVIDER_ERROR"
    if mode == "refuse":
        assert failed.json()["error"]["message"].endswith(
            "Credit card payment is not enabled for this dealer"
        )
    acid.acidpanel.mode = "ok"
    retried = await acid.pay("card", externalRef="ORD-RETRY")
    assert retried.status_code == 200, retried.text
    assert retried.json()["provider"] == "acidpanel"


def _reconciler(acid: ProviderHarness, *, later_s: int) -> ProviderReconciler:
    s = acid.services
    start = s.clock()
    return ProviderReconciler(
        s.settings, s.sessions, s.providers, s.payments, lambda: start + later_s * 1000
    )


async def test_a_lost_card_callback_is_reconciled_through_the_status_call(
    acid: ProviderHarness,
) -> None:
    card = (await acid.pay("card")).json()
    bank = (await acid.pay("bank")).json()
    acid.acidpanel.settle(_tracking(card, acid), "success")  # the callback is lost
    acid.acidpanel.settle(_tracking(bank, acid), "completed")  # lost too; no status call
    assert await _reconciler(acid, later_s=301).step() == 2
    status_calls = [r for r in acid.acidpanel.requests if r["path"] == "/credit-card/status"]
    assert [r["json"] for r in status_calls] == [{"tracking_code": _tracking(card, acid)}]
    assert status_calls[0]["answered"] == 200
    assert (await acid.status(card["transactionId"]))["status"] == "completed"
    assert (await acid.status(bank["transactionId"]))["status"] == "pending"


async def test_unknown_tracking_codes_and_statuses_are_answered_and_kept(
    acid: ProviderHarness,
) -> None:
    created = (await acid.pay("bank")).json()
    tracking = _tracking(created, acid)
    acid.acidpanel.payments["MAN-ELSEWHERE-1"] = dict(acid.acidpanel.payments[tracking])
    stranger = acid.acidpanel.settle("MAN-ELSEWHERE-1", "completed")
    assert (await acid.webhook("acidpanel", *stranger)).json() == {"received": True}
    odd = acid.acidpanel.settle(tracking, "on_hold")
    assert (await acid.webhook("acidpanel", *odd)).json() == {"received": True}
    async with acid.services.sessions() as s:
        rows = {r.key: r.result for r in (await s.execute(select(PaymentReport))).scalars()}
    assert rows == {
        "MAN-ELSEWHERE-1:completed": "unknown_reference",
        f"{tracking}:on_hold": "ignored",
    }
    assert (await acid.status(created["transactionId"]))["status"] == "pending"
    stored = json.loads(await _body_of(acid, "MAN-ELSEWHERE-1:completed"))
    assert stored["tracking_code"] == "MAN-ELSEWHERE-1"  # kept as it came, for ops


async def _body_of(acid: ProviderHarness, key: str) -> str:
    async with acid.services.sessions() as s:
        row = (
            await s.execute(select(PaymentReport).where(PaymentReport.key == key))  # type: ignore[arg-type]
        ).scalar_one()
    return row.body or ""


async def test_test_mode_payments_never_reach_acidpanel(acid: ProviderHarness) -> None:
    for method in ("card", "bank", "wallet"):
        created = await acid.pay(method, acid.merchant.test_api_key, externalRef=f"T-{method}")
        body = created.json()
        assert body["provider"] == "sandbox", body
        assert body["redirectUrl"].endswith(f"/sandbox/pay/{body['transactionId']}")
    assert acid.acidpanel.requests == []
    assert len(await callback_rows(acid.services.sessions)) == 0


async def test_concurrent_identical_creates_open_one_acidpanel_deposit(
    acid: ProviderHarness,
) -> None:
    answers = await asyncio.gather(*(acid.pay("bank", externalRef="ORD-RACE") for _ in range(10)))
    ok = [a.json() for a in answers if a.status_code == 200]
    assert ok and all(a.status_code in (200, 502) for a in answers), [a.text for a in answers]
    assert len({a["transactionId"] for a in ok}) == 1
    assert len({a["redirectUrl"] for a in ok}) == 1
    assert len(acid.acidpanel.requests) == len(acid.acidpanel.payments) == 1


@pytest.mark.parametrize("kind", ["card", "bank"])
async def test_a_paid_callback_without_a_readable_positive_amount_is_refused(
    acid: ProviderHarness, kind: str
) -> None:
    """The callback's `amount` is what AcidPanel approved, and what completes the payment (a
    payer may edit it on a deposit page). A paid callback that does not carry one, readably
    and above zero, is malformed: refused (401), stored nowhere, and the payment waits for a
    good one. It was completed with paidAmount null, which a shop crediting paidAmount
    could not act on."""
    created = (await acid.pay(kind)).json()
    txn, tracking = created["transactionId"], _tracking(created, acid)
    paid = "success" if kind == "card" else "completed"
    body, _ = acid.acidpanel.settle(tracking, paid)
    for amount in ("abc", None, -5, 0, "NaN", "", [1], {"v": 1}, True):
        fields = json.loads(body)
        fields["amount"] = amount
        _, headers = acid.acidpanel.callback(tracking, paid)
        resp = await acid.webhook("acidpanel", json.dumps(fields).encode(), headers)
        assert resp.status_code == 401, (amount, resp.text)
    fields = json.loads(body)
    del fields["amount"]
    _, headers = acid.acidpanel.callback(tracking, paid)
    assert (
        await acid.webhook("acidpanel", json.dumps(fields).encode(), headers)
    ).status_code == 401
    status = await acid.status(txn)
    assert (status["status"], status["provider"]["paidAmount"]) == ("pending", None)
    async with acid.services.sessions() as s:
        assert (await s.execute(select(PaymentReport))).first() is None
    good = await acid.webhook("acidpanel", *acid.acidpanel.callback(tracking, paid))
    assert good.status_code == 200
    assert (await acid.status(txn))["status"] == "completed"
