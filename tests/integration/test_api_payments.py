"""The merchant API over real HTTP, on SQLite and PostgreSQL (docs/merchant-api.md)."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from sqlalchemy import func, select

from tests.integration.conftest import ApiHarness
from watcher.db.models import Payment
from watcher.merchants import create_merchant
from watcher.payments.switch import set_disabled


def _error(resp: object) -> str:
    body = resp.json()  # type: ignore[attr-defined]
    assert body["success"] is False
    return str(body["error"]["code"])


async def _count(api: ApiHarness) -> int:
    async with api.services.sessions() as s:
        return int((await s.execute(select(func.count()).select_from(Payment))).scalar_one())


async def test_crypto_create_locks_rate_and_derives_address(api: ApiHarness) -> None:
    resp = await api.create(amount=10000.00)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["success"] is True and body["provider"] == "crypto"
    assert body["transactionId"].startswith("txn_") and len(body["transactionId"]) >= 36
    assert body["paymentUrl"].endswith(f"/pay/{body['transactionId']}")
    data = body["data"]
    assert data["walletAddress"].startswith("T") and len(data["walletAddress"]) == 34
    assert (data["amount"], data["currency"], data["network"], data["rate"]) == (
        281.69,
        "USDT",
        "TRC20",
        35.5,
    )
    assert '"amount":281.69' in resp.text  # a JSON number, exactly as computed
    assert data["expiresAt"].endswith("Z")


async def test_same_ref_same_amount_returns_the_same_payment(api: ApiHarness) -> None:
    first = (await api.create(externalRef="ORD-7")).json()
    second = (await api.create(externalRef="ORD-7")).json()
    assert first == second
    dup = await api.create(externalRef="ORD-7", amount=10001)
    assert dup.status_code == 409 and _error(dup) == "DUPLICATE_REF"
    assert await _count(api) == 1


async def test_fifty_concurrent_identical_creates_make_one_payment(api: ApiHarness) -> None:
    responses = await asyncio.gather(*(api.create(externalRef="RACE-1") for _ in range(50)))
    assert {r.status_code for r in responses} == {200}
    assert len({r.text for r in responses}) == 1
    assert await _count(api) == 1


async def test_status_by_id_and_ref_and_other_merchants_get_404(api: ApiHarness) -> None:
    txn = (await api.create(externalRef="ORD-S")).json()["transactionId"]
    by_id = await api.http.get(
        f"{api.url}/api/payment/status", params={"transactionId": txn}, headers=api.headers()
    )
    by_ref = await api.http.get(
        f"{api.url}/api/payment/status", params={"externalRef": "ORD-S"}, headers=api.headers()
    )
    assert by_id.status_code == 200 and by_id.json() == by_ref.json()
    tx = by_id.json()["transaction"]
    assert (tx["id"], tx["status"], tx["amount"], tx["currency"]) == (txn, "pending", 10000, "TRY")
    assert tx["crypto"]["amountUsdt"] == 281.69 and tx["crypto"]["receivedUsdt"] == 0
    async with api.services.sessions() as s, s.begin():
        other = await create_merchant(s, api.services.box, "other shop")
    for params in ({"transactionId": txn}, {"externalRef": "ORD-S"}, {"transactionId": "txn_nope"}):
        resp = await api.http.get(
            f"{api.url}/api/payment/status", params=params, headers=api.headers(other.api_key)
        )
        assert resp.status_code == 404 and _error(resp) == "NOT_FOUND"
    test_mode = await api.http.get(
        f"{api.url}/api/payment/status",
        params={"transactionId": txn},
        headers=api.headers(api.merchant.test_api_key),
    )
    assert test_mode.status_code == 404  # sandbox keys see sandbox payments only


async def test_cancel_pending_then_409(api: ApiHarness) -> None:
    txn = (await api.create(externalRef="ORD-C")).json()["transactionId"]
    url = f"{api.url}/api/payment/{txn}/cancel"
    first = await api.http.post(url, headers=api.headers())
    assert first.status_code == 200 and first.json()["transaction"]["status"] == "cancelled"
    again = await api.http.post(url, headers=api.headers())
    assert again.status_code == 409 and _error(again) == "INVALID_STATE"


BAD_FIELDS: list[tuple[dict[str, object], str]] = [
    ({"amount": "100"}, "INVALID_AMOUNT"),
    ({"amount": 100.001}, "INVALID_AMOUNT"),
    ({"amount": 99.99}, "INVALID_AMOUNT"),
    ({"amount": 500000.01}, "INVALID_AMOUNT"),
    ({"amount": -5}, "INVALID_AMOUNT"),
    ({"amount": True}, "INVALID_AMOUNT"),
    ({"amount": None}, "INVALID_AMOUNT"),
    ({"email": "not-an-email"}, "INVALID_EMAIL"),
    ({"phone": "05551234567"}, "INVALID_PHONE"),
    ({"phone": "+90 555"}, "INVALID_PHONE"),
    ({"invoiceSite": "vault"}, "INVALID_REQUEST"),
    ({"fullName": 42}, "INVALID_REQUEST"),
    ({"fullName": ""}, "INVALID_REQUEST"),
    ({"externalRef": "a:b"}, "INVALID_REQUEST"),
    ({"externalRef": "x" * 65}, "INVALID_REQUEST"),
    ({"externalRef": "bad\u0000ref"}, "INVALID_REQUEST"),
    ({"currency": "USD"}, "INVALID_REQUEST"),
    ({"provider": "paypal"}, "INVALID_REQUEST"),
    ({"callbackUrl": "ftp://example.com/hook"}, "INVALID_REQUEST"),
    ({"metadata": [1, 2]}, "INVALID_REQUEST"),
    ({"surprise": 1}, "INVALID_REQUEST"),
]


async def test_bad_fields_get_400_with_the_documented_code(api: ApiHarness) -> None:
    for fields, code in BAD_FIELDS:
        resp = await api.create(**fields)
        assert (resp.status_code, _error(resp)) == (400, code), (fields, resp.text)
    assert await _count(api) == 0


async def test_invoice_site_refusal_says_facade_mode_is_not_supported(api: ApiHarness) -> None:
    resp = await api.create(invoiceSite="theme")
    assert "facade" in resp.json()["error"]["message"]


async def test_valid_contact_fields_and_range_edges_pass(api: ApiHarness) -> None:
    low = await api.create(
        externalRef="LOW",
        amount=100,
        email="ahmet@example.com",
        phone="+905551234567",
        metadata={"userId": "123456"},
    )
    high = await api.create(externalRef="HIGH", amount=500000)
    assert low.status_code == 200 and high.status_code == 200
    assert low.json()["data"]["amount"] == float(round(Decimal(100) / Decimal("35.5"), 2))


MALFORMED: list[tuple[bytes, str]] = [
    (b"{not json", "application/json"),
    (b"[1,2,3]", "application/json"),
    (b"", "application/json"),
    (b'{"amount": NaN}', "application/json"),
    (b"amount=5", "application/x-www-form-urlencoded"),
    (b"\xff\xfe", "application/json"),
]


async def test_malformed_bodies_get_400_never_500(api: ApiHarness) -> None:
    for content, ctype in MALFORMED:
        resp = await api.http.post(
            f"{api.url}/api/payment/create",
            content=content,
            headers={**api.headers(), "content-type": ctype},
        )
        assert (resp.status_code, _error(resp)) == (400, "INVALID_REQUEST"), content


async def test_huge_body_gets_413(api: ApiHarness) -> None:
    body = b'{"fullName": "' + b"x" * 200_000 + b'"}'
    resp = await api.http.post(
        f"{api.url}/api/payment/create",
        content=body,
        headers={**api.headers(), "content-type": "application/json"},
    )
    assert resp.status_code == 413 and _error(resp) == "INVALID_REQUEST"


async def test_missing_or_wrong_key_is_401(api: ApiHarness) -> None:
    for headers in ({}, {"x-api-key": "sk_live_wrong"}, {"x-api-key": api.merchant.api_key + "x"}):
        resp = await api.http.post(f"{api.url}/api/payment/create", json={}, headers=headers)
        assert resp.status_code == 401 and _error(resp) == "UNAUTHORIZED"


async def test_operator_switch_gives_503(api: ApiHarness) -> None:
    async with api.services.sessions() as s, s.begin():
        await set_disabled(s, True, 0)
    resp = await api.create(externalRef="OFF")
    assert resp.status_code == 503 and _error(resp) == "SYSTEM_DISABLED"
    async with api.services.sessions() as s, s.begin():
        await set_disabled(s, False, 0)
    assert (await api.create(externalRef="ON")).status_code == 200


async def test_binance_down_is_502_and_stores_nothing(api: ApiHarness) -> None:
    api.binance.mode = "down"
    resp = await api.create(externalRef="NO-RATE")
    assert resp.status_code == 502 and _error(resp) == "PROVIDER_ERROR"
    assert await _count(api) == 0


async def test_unknown_route_and_method_are_json_errors(api: ApiHarness) -> None:
    missing = await api.http.get(f"{api.url}/api/nope", headers=api.headers())
    wrong = await api.http.get(f"{api.url}/api/payment/create", headers=api.headers())
    assert missing.status_code == 404 and _error(missing) == "NOT_FOUND"
    assert wrong.status_code == 405 and _error(wrong) == "INVALID_REQUEST"
