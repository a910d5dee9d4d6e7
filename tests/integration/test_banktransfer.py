"""Bank transfers reported by callback (seed 002): the payer is shown the operator's account
and the reference to quote; the service's deposit callbacks, at the secret webhook path and
from the allowed addresses, complete or fail the payment, a later change of status included.
SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from tests.support.providers import ProviderHarness, provider_harness
from tests.support.servers import serve_asgi
from watcher import jsonio
from watcher.callbacks.receiver import CallbackReceiver
from watcher.config import LogSettings, Settings
from watcher.db.models import PaymentReport
from watcher.logs import configure_logging

TOKEN = "bt_9f3c1d2e7a6b5c4d3e2f1a0b"
IBAN = "TR33 0006 1005 1978 6457 8413 26"


def bank_settings(**overrides: object) -> dict[str, object]:
    settings: dict[str, object] = {
        "webhook_token": TOKEN,
        "bank_name": "Ziraat Bankası",
        "account_name": "Kasa Dükkân Ltd. Şti.",
        "iban": IBAN,
    }
    settings.update(overrides)
    return {"bank": "banktransfer", "banktransfer": settings}


@pytest.fixture
async def bank(db_url: str) -> AsyncIterator[ProviderHarness]:
    async with provider_harness(db_url, providers=bank_settings()) as harness:
        yield harness


def deposit(process_id: str, status: str, **fields: Any) -> bytes:
    """A deposit callback as seed 002 lists it."""
    body: dict[str, Any] = {
        "hash": "zzunnCrv6Sb38TU/dPYIl+9TKd8gT6iqrcxv+V32AFs=",
        "transactionId": "6575078b9e6bb1554a50b7b1",
        "bankId": "507f1f77bcf86cd799439011",
        "amount": 1000,
        "userId": "987654",
        "name": "Mehmet Ali Yılmaz",
        "userName": "mehmetali",
        "processId": process_id,
        "type": "deposit",
        "convertedName": "mehmetaliyilmaz",
        "bank": "Fake Bank",
        "bankAccountName": "Kasa Dükkân Ltd. Şti.",
        "bankAccountIban": IBAN.replace(" ", ""),
        "status": status,
        "statusReason": None,
    }
    body.update(fields)
    return jsonio.dumps(body).encode()


JSON = {"Content-Type": "application/json"}


async def test_the_payer_is_shown_the_account_and_the_reference_in_their_language(
    bank: ProviderHarness,
) -> None:
    created = await bank.pay("bank", email=None, phone=None)
    assert created.status_code == 200, created.text
    body = created.json()
    txn = body["transactionId"]
    assert body["provider"] == "banktransfer"
    assert body["redirectUrl"] == body["paymentUrl"]
    assert body["paymentUrl"].endswith(f"/pay/{txn}")
    page_url = f"{bank.url}/pay/{txn}"
    status = await bank.status(txn)
    assert status["provider"] == {"name": "banktransfer", "reference": txn, "paidAmount": None}

    english = await bank.http.get(page_url)
    assert english.status_code == 200 and english.headers["content-language"] == "en"
    for shown in ("Ziraat Bankası", "Kasa Dükkân Ltd. Şti.", IBAN, txn, "1,000.00", "Reference"):
        assert shown in english.text, shown
    assert f'data-copy="{IBAN.replace(" ", "")}"' in english.text

    turkish = await bank.http.get(page_url, headers={"Accept-Language": "tr-TR,tr"})
    assert turkish.headers["content-language"] == "tr"
    for shown in ("havale/EFT", "Alıcı adı", "Referans (açıklama)", "1.000,00", "IBAN'ı kopyala"):
        assert shown in turkish.text, shown


async def test_successful_then_unsuccessful_completes_then_fails_with_each_callback_once(
    bank: ProviderHarness,
) -> None:
    receiver = CallbackReceiver(bank.merchant.webhook_secret)
    async with serve_asgi(receiver) as hook:
        txn = (await bank.pay("bank", callbackUrl=f"{hook}/kasa")).json()["transactionId"]
        ok = await bank.webhook("banktransfer", deposit(txn, "successful"), JSON, TOKEN)
        assert (ok.status_code, ok.json()) == (200, {"received": True})
        status = await bank.status(txn)
        assert (status["status"], status["provider"]["paidAmount"]) == ("completed", 1000)
        assert status["provider"]["reference"] == txn
        again = await bank.webhook("banktransfer", deposit(txn, "successful"), JSON, TOKEN)
        assert again.status_code == 200  # the seed: process each callback only once
        assert await bank.deliver() == 1

        reversed_ = deposit(txn, "unsuccessful", statusReason="Sistemsel hata: işlem iade edildi")
        failed = await bank.webhook("banktransfer", reversed_, JSON, TOKEN)
        assert failed.status_code == 200
        status = await bank.status(txn)
        # reversed: nothing is held as paid any more
        assert (status["status"], status["provider"]["paidAmount"]) == ("failed", None)
        replay = await bank.webhook("banktransfer", reversed_, JSON, TOKEN)
        assert replay.status_code == 200
        assert await bank.deliver() == 1
    first, second = receiver.verified()
    assert (first["event"], first["status"]) == ("payment.completed", "completed")
    assert first["provider"]["paidAmount"] == Decimal("1000")
    assert (second["event"], second["status"]) == ("payment.failed", "failed")
    assert second["details"] == {
        "previousStatus": "completed",
        "reason": "Sistemsel hata: işlem iade edildi",
    }
    assert second["sequence"] == first["sequence"] + 1
    assert second["provider"]["paidAmount"] is None
    assert [e["type"] for e in await bank.events()] == ["payment.completed", "payment.failed"]
    async with bank.services.sessions() as s:
        rows = (await s.execute(select(PaymentReport).order_by(PaymentReport.id))).scalars()  # type: ignore[arg-type]
        reports = [(r.key, r.result) for r in rows]
    assert reports == [
        ("6575078b9e6bb1554a50b7b1:successful", "applied"),
        ("6575078b9e6bb1554a50b7b1:unsuccessful", "applied"),
    ]


async def test_the_approved_amount_is_the_paid_amount(bank: ProviderHarness) -> None:
    txn = (await bank.pay("bank")).json()["transactionId"]
    body = deposit(txn, "successful", amount=Decimal("999.50"), transactionId="t-2")
    assert (await bank.webhook("banktransfer", body, JSON, TOKEN)).status_code == 200
    status = await bank.status(txn)
    assert (status["status"], status["provider"]["paidAmount"]) == ("completed", Decimal("999.5"))


# "amount" missing (MISSING), unreadable, not above zero, not finite, absurd or not a number.
MISSING = object()
NO_AMOUNTS: list[object] = [
    "abc",
    MISSING,
    None,
    -5,
    "-5",
    0,
    "0.00",
    "NaN",
    "Infinity",
    "",
    "1e999999999",
    [1000],
    {"value": 1000},
    True,
]


async def test_a_successful_deposit_without_a_readable_positive_amount_is_refused(
    bank: ProviderHarness,
) -> None:
    """A successful deposit says what arrived ("the amount you will consider"): one that does
    not, readably and above zero, is a malformed callback (401, as a body that is not JSON),
    kept nowhere, and the payment waits for a good one; it is never completed with
    paidAmount null."""
    txn = (await bank.pay("bank")).json()["transactionId"]
    for amount in NO_AMOUNTS:
        body = jsonio.loads(deposit(txn, "successful"))
        if amount is MISSING:
            del body["amount"]
        else:
            body["amount"] = amount
        resp = await bank.webhook("banktransfer", jsonio.dumps(body).encode(), JSON, TOKEN)
        assert resp.status_code == 401, (amount, resp.text)
        assert resp.json()["error"]["code"] == "UNAUTHORIZED"
    status = await bank.status(txn)
    assert (status["status"], status["provider"]["paidAmount"]) == ("pending", None)
    async with bank.services.sessions() as s:
        assert (await s.execute(select(PaymentReport))).first() is None
    # the same deposit with its amount completes it
    good = await bank.webhook("banktransfer", deposit(txn, "successful"), JSON, TOKEN)
    assert good.status_code == 200
    assert (await bank.status(txn))["status"] == "completed"


async def test_an_unsuccessful_deposit_needs_no_amount(bank: ProviderHarness) -> None:
    txn = (await bank.pay("bank")).json()["transactionId"]
    body = jsonio.loads(deposit(txn, "unsuccessful", amount="abc"))
    resp = await bank.webhook("banktransfer", jsonio.dumps(body).encode(), JSON, TOKEN)
    assert resp.status_code == 200
    assert (await bank.status(txn))["status"] == "failed"


async def test_a_wrong_or_missing_token_is_refused_and_changes_nothing(
    bank: ProviderHarness,
) -> None:
    txn = (await bank.pay("bank")).json()["transactionId"]
    body = deposit(txn, "successful")
    for path in ("bt_9f3c1d2e7a6b5c4d3e2f1a0X", TOKEN[:-1], ""):
        resp = await bank.webhook("banktransfer", body, JSON, path)
        assert resp.status_code == 401, path
        assert resp.json()["error"]["code"] == "UNAUTHORIZED"
    assert (await bank.status(txn))["status"] == "pending"
    async with bank.services.sessions() as s:
        assert (await s.execute(select(PaymentReport))).first() is None


async def test_the_webhook_token_in_the_path_never_reaches_the_log(bank: ProviderHarness) -> None:
    """The token is the bank service's only credential: a sender that hangs up mid-body
    (or any error answered at that path) is logged by route, never by the path it came to."""
    buf = io.StringIO()
    configure_logging(LogSettings(level="DEBUG", json_logs=True), stream=buf)
    try:
        where = urlsplit(bank.url)
        reader, writer = await asyncio.open_connection(where.hostname, where.port)
        writer.write(
            f"POST /providers/banktransfer/webhook/{TOKEN} HTTP/1.1\r\nhost: x\r\n".encode()
            + b'content-type: application/json\r\ncontent-length: 5000\r\n\r\n{"amount": 1'
        )
        await writer.drain()
        await asyncio.sleep(0.3)  # the body is being read
        writer.close()
        await writer.wait_closed()
        del reader
        await asyncio.sleep(0.3)
    finally:
        configure_logging(LogSettings(level="WARNING", json_logs=False))
    logged = buf.getvalue()
    assert "api.client_disconnected" in logged
    assert TOKEN not in logged, logged
    assert "/providers/{name}/webhook/{token}" in logged


@pytest.mark.parametrize(("allowed", "accepted"), [(["10.1.2.0/24"], False), (["127.0.0.1"], True)])
async def test_callbacks_come_only_from_the_allowed_addresses(
    db_url: str, allowed: list[str], accepted: bool
) -> None:
    providers = bank_settings(allowed_ips=allowed)
    async with provider_harness(db_url, providers=providers) as bank:
        txn = (await bank.pay("bank")).json()["transactionId"]
        resp = await bank.webhook("banktransfer", deposit(txn, "successful"), JSON, TOKEN)
        assert resp.status_code == (200 if accepted else 401)
        assert (await bank.status(txn))["status"] == ("completed" if accepted else "pending")


async def test_withdraw_callbacks_and_unknown_process_ids_are_answered_and_kept(
    bank: ProviderHarness,
) -> None:
    txn = (await bank.pay("bank")).json()["transactionId"]
    withdraw = deposit(txn, "successful", type="withdraw", accountName="Mehmet", iban="TR00")
    stranger = deposit("txn_" + "0" * 32, "successful", transactionId="t-elsewhere")
    for body in (withdraw, stranger):
        resp = await bank.webhook("banktransfer", body, JSON, TOKEN)
        assert (resp.status_code, resp.json()) == (200, {"received": True})
    assert (await bank.status(txn))["status"] == "pending"
    async with bank.services.sessions() as s:
        rows = {r.key: r.result for r in (await s.execute(select(PaymentReport))).scalars()}
    assert rows == {
        "withdraw:6575078b9e6bb1554a50b7b1:successful": "ignored",
        "t-elsewhere:successful": "unknown_reference",
    }


async def test_test_mode_bank_payments_use_the_sandbox_page(bank: ProviderHarness) -> None:
    created = (await bank.pay("bank", bank.merchant.test_api_key)).json()
    assert created["provider"] == "sandbox"
    page = await bank.http.get(f"{bank.url}/sandbox/pay/{created['transactionId']}")
    assert "Sandbox bank transfer payment" in page.text and "IBAN" not in page.text


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"webhook_token": "short"}, "at least 16 random letters"),
        ({"allowed_ips": ["10.0.0.300"]}, "'10.0.0.300' is not an IP address or network"),
        ({"iban": ""}, "providers.banktransfer.iban is empty"),
    ],
)
def test_settings_that_would_not_work_are_refused_at_start(
    values: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings.model_validate({"providers": bank_settings(**values)})
