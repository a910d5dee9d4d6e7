"""An API process remembers a key that authenticated for api.key_cache_s. A key rotated or a
merchant disabled in this process is refused at once; done by another process (the CLI, here
a statement on a connection of its own), once that time has passed."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from sqlalchemy import update

from tests.integration.conftest import ApiHarness
from watcher.db.engine import create_engine, session_factory
from watcher.db.models import ApiKey, Merchant
from watcher.merchants import key_changes, rotate, set_disabled

CACHE_S = 1.0


@pytest.fixture
def api_sections() -> dict[str, dict[str, object]]:
    return {"api": {"key_cache_s": CACHE_S}}


async def _status(api: ApiHarness, key: str) -> int:
    r = await api.http.get(
        f"{api.url}/api/payment/status",
        params={"transactionId": "txn_1"},
        headers={"x-api-key": key},
    )
    return r.status_code  # 404: authenticated (there is no such payment); 401: refused


async def _refused_within(api: ApiHarness, key: str, deadline_s: float) -> int:
    """Ask until the key is refused; how many answers it took."""
    deadline = time.monotonic() + deadline_s
    asked = 0
    while True:
        asked += 1
        code = await _status(api, key)
        if code == 401:
            return asked
        assert code == 404, code
        assert time.monotonic() < deadline, f"still accepted after {deadline_s} s"
        await asyncio.sleep(0.05)


async def test_a_key_rotated_in_this_process_is_refused_at_once(api: ApiHarness) -> None:
    old = api.merchant.api_key
    for _ in range(3):  # remembered by now
        assert await _status(api, old) == 404
    async with api.services.sessions() as s, s.begin():
        fresh = await rotate(s, api.services.box, "shop", secret=False)
    assert await _status(api, old) == 401
    assert await _status(api, fresh.api_key) == 404
    made = await api.create(fresh.api_key, externalRef="AFTER-ROTATE")
    assert made.status_code == 200, made.text
    refused = await api.create(old, externalRef="OLD-KEY")
    assert refused.status_code == 401


async def test_a_merchant_disabled_in_this_process_is_refused_at_once(api: ApiHarness) -> None:
    live, test = api.merchant.api_key, api.merchant.test_api_key
    assert await _status(api, live) == 404 and await _status(api, test) == 404
    async with api.services.sessions() as s, s.begin():
        await set_disabled(s, "shop", True)
    assert await _status(api, live) == 401 and await _status(api, test) == 401
    async with api.services.sessions() as s, s.begin():
        await set_disabled(s, "shop", False)
    # A key refused lately is refused without a lookup for some seconds (WrongKeys): ask
    # until it is let in again.
    deadline = time.monotonic() + 60
    while await _status(api, live) != 404:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.2)


@pytest.mark.parametrize("change", ["revoke", "disable"])
async def test_a_change_made_by_another_process_is_refused_once_the_cache_time_passed(
    api: ApiHarness, db_url: str, change: str
) -> None:
    key = api.merchant.api_key
    assert await _status(api, key) == 404
    other = create_engine(db_url)  # another process's connection: it tells this one nothing
    try:
        async with session_factory(other)() as s, s.begin():
            if change == "revoke":
                await s.execute(update(ApiKey).values(revoked_ms=1))
            else:
                await s.execute(update(Merchant).values(disabled=True))
    finally:
        await other.dispose()
    await _refused_within(api, key, deadline_s=CACHE_S + 60)
    assert (await api.create(key, externalRef="AFTER")).status_code == 401


async def test_a_wrong_key_is_never_remembered_as_good(api: ApiHarness) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        for _ in range(3):
            r = await http.get(
                f"{api.url}/api/payment/status",
                params={"transactionId": "txn_1"},
                headers={"x-api-key": api.merchant.api_key + "x"},
            )
            assert r.status_code == 401


async def test_a_change_of_keys_is_counted_when_made_and_again_when_committed(
    api: ApiHarness,
) -> None:
    """A lookup that ran between the change and its commit read the old keys: the second
    count makes the cache drop what that lookup would remember."""
    before = key_changes()
    async with api.services.sessions() as s, s.begin():
        await set_disabled(s, "shop", True)
        assert key_changes() == before + 1
    assert key_changes() == before + 2
