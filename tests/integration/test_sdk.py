"""The merchant client (kasa_watcher_client) against the real API over loopback HTTP, on
SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any

import pytest
from kasa_watcher_client import Client, WatcherAPIError, WatcherClient, verify_webhook

from tests.integration.conftest import ApiHarness
from tests.support.callbacks import add_event
from tests.support.servers import serve_asgi
from watcher.callbacks.delivery import DeliveryWorker
from watcher.callbacks.payload import callback_payload, encode
from watcher.callbacks.receiver import CallbackReceiver
from watcher.callbacks.signing import sign_body
from watcher.clock import iso, now_ms
from watcher.db.models import PaymentEvent
from watcher.merchants import create_merchant
from watcher.payments.view import is_money


def client(api: ApiHarness, key: str | None = None) -> WatcherClient:
    return WatcherClient(api.url, key or api.merchant.api_key)


async def test_create_and_status_with_exact_decimals(api: ApiHarness) -> None:
    async with client(api) as kasa:
        created = await kasa.create_payment(Decimal("10000.00"), "Ahmet Yılmaz", "ORD-SDK-1")
        assert created["provider"] == "crypto" and created["data"]["amount"] == Decimal("281.69")
        txn = created["transactionId"]
        by_id = await kasa.get_status(transaction_id=txn)
        assert by_id == await kasa.get_status(external_ref="ORD-SDK-1")
        assert (by_id["id"], by_id["status"], by_id["amount"]) == (txn, "pending", 10000)
        with pytest.raises(TypeError, match="never float"):
            await kasa.create_payment(1000.5, "Ahmet Yılmaz", "ORD-SDK-2")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="exactly one"):
            await kasa.get_status()


async def test_api_errors_raise_with_their_code(api: ApiHarness) -> None:
    async with client(api) as kasa:
        await kasa.create_payment(Decimal("1000"), "Ahmet Yılmaz", "ORD-E")
        with pytest.raises(WatcherAPIError) as dup:
            await kasa.create_payment(Decimal("1001"), "Ahmet Yılmaz", "ORD-E")
        assert (dup.value.status, dup.value.code) == (409, "DUPLICATE_REF")
        with pytest.raises(WatcherAPIError) as missing:
            await kasa.get_status(transaction_id="txn_nope")
        assert missing.value.code == "NOT_FOUND"
        with pytest.raises(WatcherAPIError) as small:
            await kasa.create_payment(Decimal("99.99"), "Ahmet Yılmaz", "ORD-S")
        assert small.value.code == "INVALID_AMOUNT"
    async with client(api, "sk_live_" + "x" * 43) as stranger:
        with pytest.raises(WatcherAPIError) as denied:
            await stranger.get_status(external_ref="ORD-E")
        assert (denied.value.status, denied.value.code) == (401, "UNAUTHORIZED")


async def test_events_page_in_order_for_this_merchant_and_mode_only(api: ApiHarness) -> None:
    earlier = now_ms() - 60_000
    async with api.services.sessions() as s, s.begin():
        for i in range(5):
            await add_event(s, api.merchant.id, None, earlier + i, ref=f"EV-{i}")
        other = await create_merchant(s, api.services.box, "another shop")
        await add_event(s, other.id, None, earlier, ref="THEIRS")
    async with client(api) as kasa:
        first = await kasa.events(limit=2)
        second = await kasa.events(after=first["next"], limit=2)
        third = await kasa.events(after=second["next"], limit=2)
        assert (first["hasMore"], second["hasMore"], third["hasMore"]) == (True, True, False)
        events = first["events"] + second["events"] + third["events"]
        assert [e["externalRef"] for e in events] == [f"EV-{i}" for i in range(5)]
        assert {e["event"] for e in events} == {"payment.completed"}
        assert all(e["amount"] == Decimal("1000") and e["sequence"] == 1 for e in events)
        assert (await kasa.events(after=third["next"]))["events"] == []

        # a state change of a moment ago is listed once it has settled, never skipped
        txn = (await kasa.create_payment(Decimal("500"), "Ayşe Kaya", "ORD-NEW"))["transactionId"]
        await kasa.cancel(txn)
        assert (await kasa.events(after=third["next"]))["events"] == []

        with pytest.raises(WatcherAPIError) as bad:
            await kasa.events(after="abc")
        assert bad.value.code == "INVALID_REQUEST"
    async with client(api, api.merchant.test_api_key) as sandbox:
        assert (await sandbox.events())["events"] == []


async def test_a_cancelled_payment_calls_back_and_the_sdk_accepts_it(api: ApiHarness) -> None:
    receiver = CallbackReceiver(api.merchant.webhook_secret)
    async with serve_asgi(receiver) as hook, client(api) as kasa:
        created = await kasa.create_payment(
            Decimal("2500.50"),
            "Gülşen Çelik",
            "SİPARİŞ-42",
            callback_url=f"{hook}/kasa",
            metadata={"userId": 123456, "bonus": Decimal("12.50"), "site": "örnek.com"},
        )
        await kasa.cancel(created["transactionId"])
        s = api.services
        worker = DeliveryWorker(s.settings, s.sessions, s.box, s.http, s.clock, "sdk-test")
        assert await worker.run_once() == 1
    [payload] = receiver.verified()  # verify_webhook with the merchant's secret accepted it
    assert (payload["event"], payload["status"]) == ("payment.cancelled", "cancelled")
    assert (payload["externalRef"], payload["amount"]) == ("SİPARİŞ-42", Decimal("2500.5"))
    assert payload["transactionId"] == created["transactionId"]
    # metadata comes back as sent: numbers stay JSON numbers, exact
    assert payload["metadata"] == {"userId": 123456, "bonus": Decimal("12.5"), "site": "örnek.com"}
    assert '"bonus":12.5' in receiver.received[0].body.decode()


async def test_the_blocking_client_speaks_the_same_api(api: ApiHarness) -> None:
    def shop() -> tuple[dict[str, object], dict[str, object], dict[str, object]]:
        with Client(api.url, api.merchant.api_key) as kasa:
            created = kasa.create_payment("1500.50", "Ayşe Kaya", "ORD-SYNC")
            again = kasa.create_payment(Decimal("1500.5"), "Ayşe Kaya", "ORD-SYNC")
            cancelled = kasa.cancel(str(created["transactionId"]))
            return created, again, cancelled

    created, again, cancelled = await asyncio.to_thread(shop)
    assert again["transactionId"] == created["transactionId"]  # idempotent by externalRef
    assert (cancelled["status"], cancelled["amount"]) == ("cancelled", Decimal("1500.5"))

    def cancel_twice() -> None:
        with Client(api.url, api.merchant.api_key) as kasa:
            kasa.cancel(str(created["transactionId"]))

    with pytest.raises(WatcherAPIError) as again_cancel:
        await asyncio.to_thread(cancel_twice)
    assert (again_cancel.value.status, again_cancel.value.code) == (409, "INVALID_STATE")


def inexact_money(value: Any, path: str = "") -> list[str]:
    """Where a money field (the daemon's is_money: amount, rate, …Amount, …Usdt), at any
    depth outside the merchant's own metadata, came back as anything but Decimal or null."""
    wrong: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "metadata":
                continue
            if is_money(key) and item is not None and type(item) is not Decimal:
                wrong.append(f"{path}.{key}={item!r}")
            wrong += inexact_money(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            wrong += inexact_money(item, f"{path}[{i}]")
    return wrong


async def test_every_money_field_comes_back_as_decimal_even_when_whole(api: ApiHarness) -> None:
    """The README says amounts are Decimal: a whole one too (10000, a receivedUsdt of 0), in
    API answers and in a verified callback. Counts stay int, metadata stays as sent."""
    async with api.services.sessions() as s, s.begin():
        await add_event(s, api.merchant.id, None, now_ms() - 60_000, ref="EV-WHOLE")
    receiver = CallbackReceiver(api.merchant.webhook_secret)
    async with serve_asgi(receiver) as hook, client(api) as kasa:
        created = await kasa.create_payment(
            Decimal("10000"),
            "Ahmet Yılmaz",
            "ORD-WHOLE",
            callback_url=f"{hook}/kasa",
            metadata={"userId": 123456, "amount": 5},
        )
        status = await kasa.get_status(transaction_id=created["transactionId"])
        assert type(status["amount"]) is Decimal, status
        cancelled = await kasa.cancel(created["transactionId"])
        sv = api.services
        worker = DeliveryWorker(sv.settings, sv.sessions, sv.box, sv.http, sv.clock, "sdk-test")
        assert await worker.run_once() == 1
        events = await kasa.events()
    [payload] = receiver.verified()
    assert [e["externalRef"] for e in events["events"]] == ["EV-WHOLE"]
    for answer in (created, status, cancelled, events, payload):
        assert inexact_money(answer) == [], answer
    assert type(payload["amount"]) is Decimal and payload["amount"] == 10000
    assert type(payload["sequence"]) is int and type(events["events"][0]["sequence"]) is int
    assert payload["metadata"] == {"userId": 123456, "amount": 5}
    assert type(payload["metadata"]["amount"]) is int


def test_a_verified_callback_has_decimal_money_in_every_block() -> None:
    """A card payment's callback, as the worker builds and signs it, with whole figures in
    the provider block and the details: all Decimal once verified, sequence an int."""
    secret, ts = "whsec_whole", iso(now_ms())
    data = {
        "transactionId": "txn_1",
        "externalRef": "ORD-1",
        "status": "failed",
        "amount": 750,
        "currency": "TRY",
        "fullName": "Şule Işık",
        "metadata": {"amount": 1},
        "provider": {"name": "kazawallet", "reference": "pl_1", "paidAmount": 700, "rate": 35},
        "crypto": {"amountUsdt": 21, "receivedUsdt": 0, "lateUsdt": None, "confirmations": 19},
        "details": {"reason": "amount_mismatch", "paidAmount": 700, "overpaidUsdt": 1},
    }
    event = PaymentEvent(
        event_id="evt_1",
        payment_id="txn_1",
        merchant_id=1,
        type="payment.failed",
        sequence=3,
        status="failed",
        created_ms=now_ms(),
        data_json=json.dumps(data),
    )
    payload = callback_payload(event, secret, ts)
    body = encode(payload)
    assert b'"amount":750,' in body and b'"paidAmount":700' in body  # whole, as JSON sends it
    headers = {
        "X-Signature": payload["signature"],
        "X-Timestamp": ts,
        "X-Body-Signature": sign_body(secret, ts, body),
    }
    verified = verify_webhook(body, headers, secret)
    assert inexact_money(verified) == [], verified
    assert (verified["amount"], verified["provider"]["paidAmount"]) == (750, 700)
    assert type(verified["sequence"]) is int and verified["sequence"] == 3
    assert type(verified["crypto"]["confirmations"]) is int
    assert type(verified["metadata"]["amount"]) is int
