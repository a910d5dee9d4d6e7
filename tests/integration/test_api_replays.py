"""A create repeating an earlier one's externalRef gets that payment whatever else stands in
the way of a new one now: the operator switch, a rate source that cannot answer. The create
reads the switch, the head and the ref in one statement of its own transaction, after the rate
quote; these keep the answer a retry gets the same as before."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from tests.integration.conftest import ApiHarness
from watcher.db.models import Payment
from watcher.payments.switch import set_disabled


@pytest.fixture
def api_sections() -> dict[str, dict[str, object]]:
    # Every quote asks Binance, and no stored rate stands in when it cannot answer.
    return {"rates": {"cache_s": 0, "max_age_s": 0}}


async def _count(api: ApiHarness) -> int:
    async with api.services.sessions() as s:
        return int((await s.execute(select(func.count()).select_from(Payment))).scalar_one())


async def test_a_retry_gets_its_payment_while_the_operator_switch_is_off(api: ApiHarness) -> None:
    first = await api.create(externalRef="SW-1")
    assert first.status_code == 200, first.text
    async with api.services.sessions() as s, s.begin():
        await set_disabled(s, True, 0)
    again = await api.create(externalRef="SW-1")
    assert (again.status_code, again.json()) == (200, first.json())
    new = await api.create(externalRef="SW-2")
    assert new.status_code == 503 and new.json()["error"]["code"] == "SYSTEM_DISABLED"
    other_amount = await api.create(externalRef="SW-1", amount=10001)
    assert other_amount.status_code == 409
    assert other_amount.json()["error"]["code"] == "DUPLICATE_REF"
    assert await _count(api) == 1


async def test_a_retry_gets_its_payment_while_the_rate_source_is_down(api: ApiHarness) -> None:
    first = await api.create(externalRef="RD-1")
    assert first.status_code == 200, first.text
    api.binance.mode = "down"
    again = await api.create(externalRef="RD-1")
    assert (again.status_code, again.json()) == (200, first.json())
    other_amount = await api.create(externalRef="RD-1", amount=10001)
    assert other_amount.status_code == 409
    new = await api.create(externalRef="RD-2")
    assert new.status_code == 502 and new.json()["error"]["code"] == "PROVIDER_ERROR"
    assert await _count(api) == 1


async def test_concurrent_creates_of_two_modes_and_many_refs_stay_apart(api: ApiHarness) -> None:
    """The same refs under a live and a test key, each sent five times at once: one payment
    per (mode, ref), each with its own address, every retry answered with it."""
    keys = (api.merchant.api_key, api.merchant.test_api_key)
    calls = [
        api.create(key, externalRef=f"MIX-{n}") for n in range(10) for key in keys for _ in range(5)
    ]
    answers = await asyncio.gather(*calls)
    assert {r.status_code for r in answers} == {200}, {r.text for r in answers}
    by_call: dict[tuple[str, str], set[str]] = {}
    for i, r in enumerate(answers):
        key = keys[(i // 5) % 2]
        by_call.setdefault((key, f"MIX-{i // 10}"), set()).add(r.text)
    assert len(by_call) == 20 and all(len(texts) == 1 for texts in by_call.values())
    assert await _count(api) == 20
    async with api.services.sessions() as s:
        rows = (await s.execute(select(Payment.sandbox, Payment.address))).all()
    assert len({address for _, address in rows}) == 20
    assert sorted(sandbox for sandbox, _ in rows) == [False] * 10 + [True] * 10
