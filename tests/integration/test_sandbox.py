"""The sandbox (test-mode payments): the card page with seed 000's test cards over real HTTP,
test callbacks (livemode false, signed with the test secret), and `watcher sandbox pay`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from tests.integration.conftest import ApiHarness
from tests.support.cards import CardHarness, card_harness
from tests.support.servers import serve_asgi
from watcher.callbacks.delivery import DeliveryWorker
from watcher.callbacks.receiver import CallbackReceiver
from watcher.cli import app as cli_app


@pytest.fixture
async def cards(db_url: str) -> AsyncIterator[CardHarness]:
    async with card_harness(db_url) as harness:
        yield harness


async def _test_card_payment(cards: CardHarness, ref: str, hook: str | None = None) -> str:
    fields: dict[str, object] = {"externalRef": ref}
    if hook:
        fields["callbackUrl"] = hook
    created = await cards.card(cards.merchant.test_api_key, **fields)
    assert created.status_code == 200, created.text
    return str(created.json()["transactionId"])


async def _pay(cards: CardHarness, txn: str, number: str, expiry: str = "12/34") -> httpx.Response:
    form = {"name": "Ahmet Yılmaz", "number": number, "expiry": expiry, "cvc": "123"}
    return await cards.http.post(f"{cards.url}/sandbox/pay/{txn}", data=form)


@pytest.mark.parametrize(
    ("number", "status", "reason", "shown"),
    [
        ("4242 4242 4242 4242", "completed", None, "Payment received"),
        ("4000 0000 0000 0002", "failed", "card_declined", "The card was declined."),
        ("4000000000009995", "failed", "insufficient_funds", "insufficient funds"),
    ],
)
async def test_test_cards_behave_as_the_seed_says_and_call_back_in_test_mode(
    cards: CardHarness, number: str, status: str, reason: str | None, shown: str
) -> None:
    receiver = CallbackReceiver("", test_secret=cards.merchant.test_webhook_secret)
    async with serve_asgi(receiver) as hook:
        txn = await _test_card_payment(cards, "ORD-SBX", f"{hook}/kasa")
        page = await cards.http.get(f"{cards.url}/sandbox/pay/{txn}")
        assert page.status_code == 200
        for token in ("cc-number", "cc-exp", "cc-csc", "cc-name"):
            assert f'autocomplete="{token}"' in page.text
        paid = await _pay(cards, txn, number)
        assert paid.status_code == 303 and paid.headers["location"] == f"/sandbox/pay/{txn}"
        after = await cards.http.get(f"{cards.url}/sandbox/pay/{txn}")
        assert shown in after.text and "cc-number" not in after.text
        state = await cards.status(txn, cards.merchant.test_api_key)
        assert (state["status"], state["livemode"]) == (status, False)
        assert state["provider"]["name"] == "sandbox"
        assert await cards.deliver() == 1
    [payload] = receiver.verified()  # verified with the test secret
    assert (payload["status"], payload["livemode"]) == (status, False)
    assert payload.get("details", {}).get("reason") == reason
    assert cards.stripe.requests == []


async def test_three_d_secure_card_asks_then_follows_the_payer(cards: CardHarness) -> None:
    approved = await _test_card_payment(cards, "ORD-3DS-OK")
    step = await _pay(cards, approved, "4000 0025 0000 3155")
    assert step.status_code == 200 and "3-D Secure" in step.text
    assert (await cards.status(approved, cards.merchant.test_api_key))["status"] == "pending"
    ok = await cards.http.post(
        f"{cards.url}/sandbox/pay/{approved}/3ds", data={"decision": "approve"}
    )
    assert ok.status_code == 303
    assert (await cards.status(approved, cards.merchant.test_api_key))["status"] == "completed"
    refused = await _test_card_payment(cards, "ORD-3DS-NO")
    await _pay(cards, refused, "4000002500003155")
    await cards.http.post(f"{cards.url}/sandbox/pay/{refused}/3ds", data={"decision": "refuse"})
    assert (await cards.status(refused, cards.merchant.test_api_key))["status"] == "failed"


async def test_a_test_payment_paid_in_the_sandbox_says_what_was_paid_as_a_live_one_does(
    db_url: str,
) -> None:
    """A completed provider payment carries provider.paidAmount (Stripe's amount_total,
    AcidPanel's approved amount): test-mode ones the same, so a shop's code reading it is
    tried in test mode on the figure it will get live, not on null."""
    bank = {
        "webhook_token": "sandbox-paid-amount-token",
        "bank_name": "B",
        "account_name": "A",
        "iban": "TR00",
    }
    providers = {"bank": "banktransfer", "banktransfer": bank}
    async with card_harness(db_url, providers=providers) as cards:
        key = cards.merchant.test_api_key
        card = await _test_card_payment(cards, "ORD-SBX-PAID")
        await _pay(cards, card, "4242 4242 4242 4242")
        three_ds = await _test_card_payment(cards, "ORD-SBX-3DS-PAID")
        await _pay(cards, three_ds, "4000 0025 0000 3155")
        await cards.http.post(
            f"{cards.url}/sandbox/pay/{three_ds}/3ds", data={"decision": "approve"}
        )
        created = await cards.card(key, provider="bank", amount=1234.5, externalRef="ORD-SBX-BANK")
        deposit = created.json()["transactionId"]
        done = await cards.http.post(
            f"{cards.url}/sandbox/pay/{deposit}/action", data={"action": "complete"}
        )
        assert done.status_code == 303
        for txn, amount in ((card, 1000), (three_ds, 1000), (deposit, 1234.5)):
            state = await cards.status(txn, key)
            assert (state["status"], state["livemode"]) == ("completed", False)
            assert state["provider"]["paidAmount"] == amount, state


async def test_other_numbers_and_bad_details_get_a_clear_message(cards: CardHarness) -> None:
    txn = await _test_card_payment(cards, "ORD-BAD")
    for number, expiry, message in (
        ("4111 1111 1111 1111", "12/34", "use a test card"),
        ("4242 4242 4242 4242", "01/20", "expired"),
        ("4242 4242 4242 4242", "13/34", "MM/YY"),
    ):
        resp = await _pay(cards, txn, number, expiry)
        assert resp.status_code == 200 and message in resp.text, message
    bad_cvc = await cards.http.post(
        f"{cards.url}/sandbox/pay/{txn}",
        data={"number": "4242424242424242", "expiry": "12/34", "cvc": "12"},
    )
    assert "3 digits" in bad_cvc.text
    assert (await cards.status(txn, cards.merchant.test_api_key))["status"] == "pending"


async def test_live_payments_have_no_sandbox_page(cards: CardHarness) -> None:
    live = (await cards.card(externalRef="ORD-LIVE")).json()["transactionId"]
    page = await cards.http.get(f"{cards.url}/sandbox/pay/{live}")
    assert page.status_code == 404
    paid = await _pay(cards, live, "4242 4242 4242 4242")
    assert paid.status_code == 404
    assert (await cards.status(live))["status"] == "pending"


async def test_the_pay_page_of_a_card_payment_shows_its_status_and_the_way_to_pay(
    cards: CardHarness,
) -> None:
    created = (await cards.card(externalRef="ORD-PAGE")).json()
    page = await cards.http.get(f"{cards.url}/pay/{created['transactionId']}")
    assert page.status_code == 200
    assert "Awaiting payment" in page.text and created["redirectUrl"] in page.text
    assert "1,000.00" in page.text


async def test_sandbox_pay_pays_a_test_crypto_payment_and_refuses_a_live_one(
    api: ApiHarness, db_url: str, tmp_path: Path
) -> None:
    cfg = tmp_path / "watcher.toml"
    cfg.write_text(f'[database]\nurl = "{db_url}"\n')
    receiver = CallbackReceiver("", test_secret=api.merchant.test_webhook_secret)
    async with serve_asgi(receiver) as hook:
        test_key = api.merchant.test_api_key
        txn = (await api.create(test_key, callbackUrl=hook)).json()["transactionId"]
        live = (await api.create(externalRef="ORD-LIVE")).json()["transactionId"]

        def cli(*args: str) -> tuple[int, str, str]:
            result = CliRunner().invoke(cli_app, ["--config", str(cfg), *args])
            return result.exit_code, result.stdout, result.stderr

        code, out, err = await asyncio.to_thread(
            cli, "sandbox", "pay", txn, "--amount", "100", "--json"
        )
        assert code == 0, err
        partial = json.loads(out)
        assert (partial["amountUsdt"], partial["status"]) == (100, "pending")
        code, out, _ = await asyncio.to_thread(cli, "sandbox", "pay", txn)
        assert code == 0 and "status completed" in out and "181.69 USDT" in out
        status = await api.http.get(
            f"{api.url}/api/payment/status",
            params={"transactionId": txn},
            headers=api.headers(test_key),
        )
        crypto = status.json()["transaction"]["crypto"]
        assert crypto["receivedUsdt"] == 281.69 and len(crypto["txids"]) == 2
        code, _, err = await asyncio.to_thread(cli, "sandbox", "pay", live)
        assert code == 1 and "live payment" in err
        code, _, err = await asyncio.to_thread(cli, "sandbox", "pay", txn)
        assert code == 1 and "nothing is due" in err
        s = api.services
        worker = DeliveryWorker(s.settings, s.sessions, s.box, s.http, s.clock, "sbx")
        assert await worker.run_once() == 1
    [completed] = receiver.verified()
    assert (completed["event"], completed["livemode"]) == ("payment.completed", False)


async def test_the_three_d_secure_step_needs_the_three_d_secure_card(cards: CardHarness) -> None:
    """Approving a 3-D Secure step nobody was asked for would pay a test payment without a
    card: the step exists only after 4000 0025 0000 3155 was entered."""
    txn = await _test_card_payment(cards, "ORD-3DS-SKIP")
    skipped = await cards.http.post(
        f"{cards.url}/sandbox/pay/{txn}/3ds", data={"decision": "approve"}
    )
    assert skipped.status_code == 303
    assert (await cards.status(txn, cards.merchant.test_api_key))["status"] == "pending"
    declined = await _test_card_payment(cards, "ORD-3DS-SKIP-2")
    await _pay(cards, declined, "4000 0000 0000 0002")  # a declined card, then the step
    await cards.http.post(f"{cards.url}/sandbox/pay/{declined}/3ds", data={"decision": "approve"})
    assert (await cards.status(declined, cards.merchant.test_api_key))["status"] == "failed"
