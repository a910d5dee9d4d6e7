"""Per-key rate limit (429) and per-customer limits (403) over real HTTP."""

from __future__ import annotations

import pytest

from tests.integration.conftest import ApiHarness
from watcher.merchants import create_merchant


@pytest.fixture
def api_sections() -> dict[str, dict[str, object]]:
    return {
        "api": {"rate_limit_per_minute": 6},
        "limits": {"daily_count": 2, "daily_sum": 25000},
    }


async def test_customer_limits_by_email_phone_and_user_id(api: ApiHarness) -> None:
    first = await api.create(externalRef="L1", email="a@example.com", amount=10000)
    second = await api.create(
        externalRef="L2", phone="+905551234567", email="a@example.com", amount=10000
    )
    assert first.status_code == 200 and second.status_code == 200
    by_count = await api.create(externalRef="L3", email="A@example.com", amount=100)
    assert by_count.status_code == 403
    assert by_count.json()["error"]["code"] == "LIMIT_EXCEEDED"
    by_sum = await api.create(externalRef="L4", phone="+905551234567", amount=15001)
    assert by_sum.status_code == 403 and "daily" in by_sum.json()["error"]["message"]
    other = await api.create(
        externalRef="L5", email="b@example.com", amount=100, metadata={"userId": 7}
    )
    assert other.status_code == 200


async def test_customer_limits_count_within_one_merchant_and_one_mode(api: ApiHarness) -> None:
    # The same customer at another shop, or in this shop's test mode, is another story: one
    # merchant's sandbox runs must not use up a real customer's limit, and a 403 here must
    # not tell this merchant what the customer spent elsewhere.
    async with api.services.sessions() as s, s.begin():
        other = await create_merchant(s, api.services.box, "other shop")
    email = {"email": "c@example.com"}
    for ref in ("A-1", "A-2"):
        assert (await api.create(externalRef=ref, amount=10000, **email)).status_code == 200
    test_mode = await api.create(api.merchant.test_api_key, externalRef="T-1", **email)
    assert test_mode.status_code == 200, test_mode.text
    elsewhere = await api.create(other.api_key, externalRef="B-1", amount=20000, **email)
    assert elsewhere.status_code == 200, elsewhere.text
    over_sum = await api.create(other.api_key, externalRef="B-2", amount=5001, **email)
    over_count = await api.create(externalRef="A-3", amount=100, **email)
    for refused in (over_sum, over_count):
        assert refused.status_code == 403, refused.text
        message = refused.json()["error"]["message"]
        assert "email" in message and not any(ch.isdigit() for ch in message), message


async def test_rate_limit_per_key_answers_429_with_retry_after(api: ApiHarness) -> None:
    codes = []
    for i in range(8):
        resp = await api.http.get(
            f"{api.url}/api/payment/status",
            params={"externalRef": f"none-{i}"},
            headers=api.headers(),
        )
        codes.append(resp.status_code)
        if resp.status_code == 429:
            assert int(resp.headers["Retry-After"]) >= 1
            assert resp.json()["error"]["code"] == "RATE_LIMITED"
    assert codes[:6] == [404] * 6 and codes[6:] == [429, 429]
    other_key = await api.http.get(
        f"{api.url}/api/payment/status",
        params={"externalRef": "x"},
        headers=api.headers(api.merchant.test_api_key),
    )
    assert other_key.status_code == 404  # each key has its own bucket
