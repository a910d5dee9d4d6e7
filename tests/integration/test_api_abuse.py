"""Strangers hammering the API: wrong API keys and the public checkout pages are limited per
client address (429 RATE_LIMITED with Retry-After), and a client that hangs up mid-body is
one quiet log line, not an error with a traceback."""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.integration.conftest import ApiHarness
from watcher.config import LogSettings
from watcher.logs import configure_logging
from watcher.merchants import rotate


@pytest.fixture
def db_kind() -> str:
    """The limits live in process memory: one database kind is enough."""
    return "sqlite"


@pytest.fixture
def api_sections() -> dict[str, dict[str, object]]:
    return {"api": {"auth_failures_per_minute": 10, "pay_rate_limit_per_minute": 40}}


def _from(ip: str) -> dict[str, str]:
    # The API trusts X-Forwarded-For from its reverse proxy on loopback (uvicorn's default).
    return {"x-forwarded-for": ip}


async def test_wrong_api_keys_are_rate_limited_per_client_address(api: ApiHarness) -> None:
    limit = api.services.settings.api.auth_failures_per_minute
    url = f"{api.url}/api/payment/status"
    wrong = {"x-api-key": "sk_live_" + "x" * 43, **_from("203.0.113.7")}
    for _ in range(limit):
        r = await api.http.get(url, params={"transactionId": "txn_1"}, headers=wrong)
        assert r.status_code == 401
    r = await api.http.get(url, params={"transactionId": "txn_1"}, headers=wrong)
    assert r.status_code == 429, r.text
    assert r.json()["error"]["code"] == "RATE_LIMITED"
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    missing = await api.http.get(url, headers=_from("203.0.113.7"))
    assert missing.status_code == 429  # no key at all counts the same
    elsewhere = await api.http.get(url, headers={**wrong, **_from("203.0.113.8")})
    assert elsewhere.status_code == 401
    merchant = await api.http.get(
        url, params={"transactionId": "txn_1"}, headers={**api.headers(), **_from("198.51.100.1")}
    )
    assert merchant.status_code == 404
    # A merchant whose key worked lately is not held back from a locked-out address (a
    # shared egress, its own stale cron job); a revoked or wrong key there still is.
    shared = await api.http.get(
        url, params={"transactionId": "txn_1"}, headers={**api.headers(), **_from("203.0.113.7")}
    )
    assert shared.status_code == 404


async def test_a_stale_server_sending_the_old_key_does_not_lock_out_the_new_one(
    api: ApiHarness,
) -> None:
    """A merchant rotates its key; one of its servers behind the same address keeps sending
    the revoked key. That server is refused (401, then 429), but the servers already on the
    new key, which this process has never seen authenticate, must get through."""
    limit = api.services.settings.api.auth_failures_per_minute
    url = f"{api.url}/api/payment/status"
    old_key = api.merchant.api_key
    async with api.services.sessions() as s, s.begin():
        fresh = await rotate(s, api.services.box, "shop", secret=False)
    stale = {"x-api-key": old_key, **_from("203.0.113.20")}
    answers = [
        (await api.http.get(url, params={"transactionId": "txn_1"}, headers=stale)).status_code
        for _ in range(limit + 5)
    ]
    assert set(answers[:limit]) == {401} and set(answers[limit:]) == {429}, answers
    updated = {"x-api-key": fresh.api_key, **_from("203.0.113.20")}
    r = await api.http.get(url, params={"transactionId": "txn_1"}, headers=updated)
    assert r.status_code == 404, r.text  # authenticated: there is no such payment
    # Strangers trying many keys from an address still get no lookups once over the limit.
    for n in range(limit):
        guess = {"x-api-key": f"sk_live_{n:043d}", **_from("203.0.113.21")}
        assert (await api.http.get(url, headers=guess)).status_code == 401
    guess = {"x-api-key": "sk_live_" + "y" * 43, **_from("203.0.113.21")}
    assert (await api.http.get(url, headers=guess)).status_code == 429


async def test_checkout_pages_are_rate_limited_per_client_address(api: ApiHarness) -> None:
    made = (await api.create()).json()
    limit = api.services.settings.api.pay_rate_limit_per_minute
    status = f"{api.url}/pay/{made['transactionId']}/status.json"
    payer = _from("192.0.2.10")
    for _ in range(limit):
        assert (await api.http.get(status, headers=payer)).status_code == 200
    r = await api.http.get(f"{api.url}/pay/{made['transactionId']}", headers=payer)
    assert r.status_code == 429
    assert r.json()["error"]["code"] == "RATE_LIMITED" and int(r.headers["Retry-After"]) >= 1
    other = await api.http.get(status, headers=_from("192.0.2.11"))
    assert other.status_code == 200


async def test_a_client_that_hangs_up_mid_body_is_a_quiet_log_line(api: ApiHarness) -> None:
    buf = io.StringIO()
    configure_logging(LogSettings(level="DEBUG", json_logs=True), stream=buf)
    try:
        where = urlsplit(api.url)
        reader, writer = await asyncio.open_connection(where.hostname, where.port)
        writer.write(
            b"POST /api/payment/create HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            + f"x-api-key: {api.merchant.api_key}\r\ncontent-length: 5000\r\n\r\n".encode()
            + b'{"amount": 10000, "fullName": "A'
        )
        await writer.drain()
        await asyncio.sleep(0.3)  # the request is being read: auth done, body awaited
        writer.close()
        await writer.wait_closed()
        del reader
        await asyncio.sleep(0.5)
        # The API still serves.
        assert (await api.http.get(f"{api.url}/healthz")).status_code in (200, 503)
    finally:
        configure_logging(LogSettings(level="WARNING", json_logs=False))
    lines: list[dict[str, Any]] = [
        json.loads(line) for line in buf.getvalue().splitlines() if line.startswith("{")
    ]
    assert [e for e in lines if e.get("level") in ("error", "critical")] == [], lines
    assert not any("exception" in e for e in lines), lines
    assert any(e["event"] == "api.client_disconnected" for e in lines), lines
