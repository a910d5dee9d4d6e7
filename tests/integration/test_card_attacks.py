"""Card payments attacked: by a payer who holds another way into the operator's Stripe
account, by a merchant who acts in the wrong order, by a Stripe that answers oddly. Real
HTTP (the fake Stripe on loopback), SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.integration.conftest import ApiHarness
from tests.support.cards import CardHarness, card_harness


@pytest.fixture
async def cards(db_url: str) -> AsyncIterator[CardHarness]:
    async with card_harness(db_url) as harness:
        yield harness


async def test_a_method_that_is_off_is_named_before_the_fields_it_would_need(
    api: ApiHarness,
) -> None:
    """Auth, body shape, provider enabled, then fields: a client fixing the amount and the
    email of a card payment on a server without cards would fix them in vain."""
    resp = await api.create(provider="card", amount=1, email="not-an-address")
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["code"] == "INVALID_REQUEST" and "not enabled" in error["message"], error
