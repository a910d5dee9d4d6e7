"""Idempotent create under concurrent retries when a per-customer limit is also in play."""

from __future__ import annotations

import asyncio

import pytest

from tests.integration.conftest import ApiHarness


@pytest.fixture
def api_sections() -> dict[str, dict[str, object]]:
    return {"limits": {"daily_count": 1}}


async def test_concurrent_retries_of_a_customers_only_allowed_payment_all_get_it(
    api: ApiHarness,
) -> None:
    # The retries that lose the race must see the winner's payment, not count it against
    # the customer's limit and answer 403 for the very payment that was made.
    responses = await asyncio.gather(
        *(api.create(externalRef="LIM-1", email="c@example.com") for _ in range(20))
    )
    assert {r.status_code for r in responses} == {200}, {r.text for r in responses}
    assert len({r.json()["transactionId"] for r in responses}) == 1
    other = await api.create(externalRef="LIM-2", email="c@example.com")
    assert other.status_code == 403
