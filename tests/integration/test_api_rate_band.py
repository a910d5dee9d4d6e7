"""A broken or absurd rate never locks a payment; nothing under one USDT cent is taken."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import func, select

from tests.integration.conftest import ApiHarness
from watcher.db.models import Payment, RateQuote


@pytest.fixture
def api_sections() -> dict[str, dict[str, object]]:
    # A merchant's own minimum low enough that the USDT amount can round to nothing.
    return {"limits": {"crypto_min": "0.01"}}


async def _rows(api: ApiHarness, table: type[Payment] | type[RateQuote]) -> int:
    async with api.services.sessions() as s:
        return int((await s.execute(select(func.count()).select_from(table))).scalar_one())


@pytest.mark.parametrize("price", ["1000000000", "1000.01", "0.99", "0.00000001"])
async def test_a_rate_outside_the_sane_band_is_502_and_stores_nothing(
    api: ApiHarness, price: str
) -> None:
    api.binance.price = Decimal(price)
    resp = await api.create(externalRef="BAND", amount=10000)
    assert resp.status_code == 502, resp.text
    error = resp.json()["error"]
    assert error["code"] == "PROVIDER_ERROR" and "rate" in error["message"]
    assert await _rows(api, Payment) == 0
    assert await _rows(api, RateQuote) == 0


@pytest.mark.parametrize("price", ["1", "1000"])
async def test_the_band_edges_are_sane_rates(api: ApiHarness, price: str) -> None:
    api.binance.price = Decimal(price)
    resp = await api.create(externalRef="EDGE", amount=10000)
    assert resp.status_code == 200, resp.text
    assert Decimal(str(resp.json()["data"]["rate"])) == Decimal(price)


async def test_a_payment_under_one_usdt_cent_is_refused(api: ApiHarness) -> None:
    resp = await api.create(externalRef="TINY", amount=0.17)  # 0.0048 USDT at 35.50
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["code"] == "INVALID_AMOUNT" and "0.01 USDT" in error["message"]
    assert await _rows(api, Payment) == 0
    ok = await api.create(externalRef="CENT", amount=0.36)  # 0.0101 -> 0.01 USDT
    assert ok.status_code == 200, ok.text
    assert ok.json()["data"]["amount"] == 0.01
