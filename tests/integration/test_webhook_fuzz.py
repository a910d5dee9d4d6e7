"""Forged webhooks over real HTTP, on SQLite and PostgreSQL: hypothesis writes bodies that
name real pending payments (their ids, the providers' references) with paying statuses,
under signatures that do not verify (none, random, another secret's, a stale timestamp,
header bytes of any kind, a wrong path token). Every one is 401 UNAUTHORIZED, and afterwards
no payment, report, event or callback has changed.

And what a provider does sign (the bank service's token) of any shape is answered, never a
5xx, whatever text it holds.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from tests.support.cards import SECRET_KEY, WEBHOOK_SECRET
from tests.support.providers import ACID_API_KEY, ProviderHarness, provider_harness
from watcher.db.models import Callback, Payment, PaymentEvent, PaymentReport
from watcher.devchain.stripe import sign
from watcher.providers.kazawallet import webhook_secret

BANK_TOKEN = "bt_fuzz_4e1f0c2d9a8b7c6d"
PROVIDERS: dict[str, object] = {
    "card": "acidpanel",
    "bank": "banktransfer",
    "wallet": "kazawallet",
    "banktransfer": {
        "webhook_token": BANK_TOKEN,
        "bank_name": "Ziraat Bankası",
        "account_name": "Kasa Dükkân Ltd. Şti.",
        "iban": "TR33 0006 1005 1978 6457 8413 26",
    },
    "stripe": {"secret_key": SECRET_KEY, "webhook_secret": WEBHOOK_SECRET},
}
PAYING = ["completed", "success", "successful", "fulfilled", "paid", "checkout.session.completed"]
FUZZ = settings(
    max_examples=80,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture
async def shop(db_url: str) -> AsyncIterator[ProviderHarness]:
    unlimited = {"rate_limit_per_minute": 0, "auth_failures_per_minute": 0}
    async with provider_harness(db_url, providers=PROVIDERS, api=unlimited) as harness:
        yield harness


async def _pending(shop: ProviderHarness) -> list[str]:
    """Ids and provider references of pending card, bank and wallet payments."""
    names = []
    for method in ("card", "bank", "wallet"):
        created = await shop.pay(method, externalRef=f"FZ-{method}")
        assert created.status_code == 200, created.text
        txn = created.json()["transactionId"]
        names += [txn, (await shop.status(txn))["provider"]["reference"] or txn]
    return names


async def _state(shop: ProviderHarness) -> tuple[Any, ...]:
    async with shop.services.sessions() as s:
        payments = (await s.execute(select(Payment).order_by(Payment.id))).scalars().all()
        counts = [
            await s.scalar(select(func.count()).select_from(model))
            for model in (PaymentReport, PaymentEvent, Callback)
        ]
    return tuple((p.id, p.status, p.paid_kurus, p.provider_payment_ref) for p in payments), counts


texts = st.one_of(st.text(max_size=20), st.sampled_from(["", "\x00", "\ud800", "1e999999"]))
# What a header can carry: Latin-1 bytes without control characters or surrounding spaces.
latin1 = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=70
).map(str.strip)


def _encode(fields: dict[str, Any]) -> bytes:
    """JSON as a sender writes it: lone surrogates as \\u escapes."""
    return json.dumps(fields, ensure_ascii=True).encode()


@st.composite
def forged(draw: st.DrawFn, names: list[str]) -> tuple[str, bytes, dict[str, str]]:
    """(URL path, body, headers) of a webhook that names a real payment and does not verify."""
    name, status = draw(st.sampled_from(names)), draw(st.sampled_from(PAYING))
    fields: dict[str, Any] = {
        "tracking_code": name,
        "order_id": name,
        "ref": name,
        "processId": name,
        "transactionId": name,
        "status": status,
        "type": draw(st.sampled_from(["deposit", status])),
        "amount": draw(st.sampled_from([1000, "1000", "1000.00", 10**6])),
        "id": f"evt_{name}",
        "livemode": True,
        "data": {"object": {"metadata": {"transactionId": name}, "payment_status": "paid"}},
    }
    fields.update(draw(st.dictionaries(st.sampled_from(sorted(fields)), texts, max_size=3)))
    body = _encode(fields)
    stamp = int(time.time()) - draw(st.sampled_from([0, 0, 301, -301, 10**6]))
    stale = time.time() - stamp > 300
    provider = draw(st.sampled_from(["stripe", "acidpanel", "kazawallet", "banktransfer"]))
    wrong = draw(st.one_of(st.sampled_from(["", "00", "x" * 64]), latin1))
    headers: dict[str, str] = {}
    path = f"/providers/{provider}/webhook"
    if provider == "stripe":
        # Stripe's own check refuses only old signatures (a future one needs the secret).
        good = sign(body, WEBHOOK_SECRET, stamp) if stale else None
        headers["stripe-signature"] = good or draw(
            st.sampled_from([sign(body, "whsec_other", stamp), f"t={stamp},v1={wrong}"])
        )
    elif provider == "acidpanel":
        key = ACID_API_KEY if abs(time.time() - stamp) > 300 else "ak_other"
        text = f"{key}x{fields['tracking_code']}{fields['status']}{stamp}"
        hashed = hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()
        headers.update(
            {"x-hash": draw(st.sampled_from([hashed, wrong])), "x-timestamp": str(stamp)}
        )
    elif provider == "kazawallet":
        fields["secret"] = draw(
            st.sampled_from([webhook_secret("1000", name, "kk_other", "x"), wrong])
        )
        body = _encode(fields)
    else:
        path += "/" + draw(st.sampled_from([BANK_TOKEN[:-1], BANK_TOKEN.upper(), "x" * 24]))
    return path, body, headers


def _send_forged(base_url: str, names: list[str]) -> list[int]:
    statuses: list[int] = []
    http = requests.Session()

    @FUZZ
    @given(request=forged(names))
    def run(request: tuple[str, bytes, dict[str, str]]) -> None:
        path, body, headers = request
        headers = {k: v.encode("latin-1").decode("latin-1") for k, v in headers.items()}
        resp = http.post(base_url + path, data=body, headers=headers, timeout=30)
        statuses.append(resp.status_code)
        assert resp.status_code == 401, (path, body[:200], headers, resp.text)
        assert resp.json()["error"]["code"] == "UNAUTHORIZED"

    run()
    return statuses


async def test_forged_webhooks_are_401_and_change_nothing(shop: ProviderHarness) -> None:
    names = await _pending(shop)
    before = await _state(shop)
    statuses = await asyncio.to_thread(_send_forged, shop.url, names)
    assert len(statuses) >= 50 and set(statuses) == {401}
    assert await _state(shop) == before


def _send_verified(base_url: str) -> list[int]:
    statuses: list[int] = []
    http = requests.Session()
    named = st.fixed_dictionaries(
        {},
        optional={
            key: st.one_of(texts, texts.map(lambda t: f"p{t}\x00"))
            for key in ("processId", "transactionId", "status", "type", "statusReason")
        },
    )
    other = st.dictionaries(texts, st.one_of(st.none(), st.integers(), texts), max_size=3)

    @FUZZ
    @given(fields=st.builds(lambda a, b: {**b, **a}, named, other))
    def run(fields: dict[str, Any]) -> None:
        body = _encode(fields)
        url = f"{base_url}/providers/banktransfer/webhook/{BANK_TOKEN}"
        resp = http.post(url, data=body, headers={"content-type": "application/json"}, timeout=30)
        statuses.append(resp.status_code)
        assert resp.status_code in (200, 401), (body[:300], resp.text)

    run()
    return statuses


async def test_signed_bank_callbacks_of_any_shape_are_answered_never_5xx(
    shop: ProviderHarness,
) -> None:
    statuses = await asyncio.to_thread(_send_verified, shop.url)
    assert 200 in statuses


async def test_a_signed_bank_callback_with_nul_characters_is_stored_and_answered(
    shop: ProviderHarness,
) -> None:
    # JSON's \u0000 decodes to NUL, which PostgreSQL text cannot hold: storing the report
    # failed, the callback was answered 500, and the bank service would retry it forever.
    paid = {"processId": "a\x00", "status": "successful", "amount": 1000}
    for fields in (paid, {"transactionId": "t\x00"}):
        resp = await shop.webhook("banktransfer", _encode(fields), {}, BANK_TOKEN)
        assert (resp.status_code, resp.json()) == (200, {"received": True}), resp.text
    async with shop.services.sessions() as s:
        keys = (await s.execute(select(PaymentReport.key).order_by(PaymentReport.id))).scalars()
        assert list(keys) == ["process:a\ufffd:successful", "t\ufffd:"]


async def test_unsigned_webhooks_that_were_500s_are_401(shop: ProviderHarness) -> None:
    # Before: TypeError in the stripe package's compare_digest (a Latin-1 header byte), and
    # UnicodeEncodeError hashing or storing JSON's "\ud800" (a lone surrogate).
    stamp = str(int(time.time()))
    cases: list[tuple[str, bytes, dict[str, Any], str]] = [
        ("stripe", b"{}", {"stripe-signature": f"t={stamp},v1=\xe9".encode("latin-1")}, ""),
        ("acidpanel", b'{"tracking_code": "\\ud800"}', {"x-hash": "0", "x-timestamp": stamp}, ""),
        ("kazawallet", b'{"order_id": "\\ud800", "amount": "10", "secret": "x"}', {}, ""),
        ("banktransfer", b'{"processId": "\\ud800", "status": "successful"}', {}, BANK_TOKEN),
    ]
    for name, body, headers, path in cases:
        resp = await shop.webhook(name, body, headers, path)
        assert resp.status_code == 401, (name, resp.text)
