"""callbackUrl at create, over real HTTP: what could never be sent is refused up front."""

from __future__ import annotations

import pytest

from tests.integration.conftest import ApiHarness


@pytest.fixture
def api_sections() -> dict[str, dict[str, object]]:
    return {"callbacks": {"allow_private_urls": False}}


UNSENDABLE = [
    # Hosts no resolver takes: the sender used to crash on them before recording an attempt.
    "http://" + "a" * 64 + ".example/hook",
    "http://xn--/hook",
    "http://a..b.example/hook",
    "http://0x7f.1/hook",
    # Addresses that are not the merchant's server.
    "http://[64:ff9b::7f00:1]/hook",
    "http://[64:ff9b:1::a00:1]/hook",
    "http://[::127.0.0.1]/hook",
    "http://224.0.0.1/hook",
    "http://[ff02::1]/hook",
    "http://192.88.99.1/hook",
    "http://169.254.169.254/latest/meta-data",
]


async def test_callback_urls_that_could_never_be_sent_are_invalid_requests(
    api: ApiHarness,
) -> None:
    for i, url in enumerate(UNSENDABLE):
        resp = await api.create(externalRef=f"CB-{i}", callbackUrl=url)
        assert resp.status_code == 400, (url, resp.text)
        error = resp.json()["error"]
        assert error["code"] == "INVALID_REQUEST" and "callbackUrl" in error["message"], url
    ok = await api.create(externalRef="CB-OK", callbackUrl="https://hooks.shop.example/kasa")
    assert ok.status_code == 200, ok.text
