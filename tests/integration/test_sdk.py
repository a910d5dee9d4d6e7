"""The merchant client (kasa_watcher_client) against the real API over loopback HTTP, on
SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from kasa_watcher_client import Client, WatcherAPIError, WatcherClient

from tests.integration.conftest import ApiHarness
from tests.support.callbacks import add_event
from tests.support.servers import serve_asgi
from watcher.callbacks.delivery import DeliveryWorker
from watcher.callbacks.receiver import CallbackReceiver
from watcher.clock import now_ms
from watcher.merchants import create_merchant


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
