"""The hosted checkout page over real HTTP: what a payer sees, and what they must not see."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from watcher import jsonio
from watcher.api.checkout import router
from watcher.api.errors import install
from watcher.db.engine import transaction
from watcher.db.models import Merchant, Payment

pytestmark = pytest.mark.parametrize("db_kind", ["sqlite"])  # storage is not the point here

T0 = 1_790_000_000_000
TXN = "txn_" + "ab" * 16
ADDRESS = "TUEZSdKsoDHQMeZwihtdoBiN46zxhGWYdH"


class FakeServices:
    """What the checkout router reads from app.state.services."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], now: int) -> None:
        self.sessions = sessions
        self.clock = lambda: now


async def add_payment(
    sessions: async_sessionmaker[AsyncSession], pid: str = TXN, **fields: object
) -> None:
    values: dict[str, object] = {
        "id": pid,
        "merchant_id": 1,
        "external_ref": pid,
        "provider": "crypto",
        "amount_kurus": 1_000_000,
        "full_name": "Ayşe Yılmaz",
        "email": "ayse@example.com",
        "phone": "+905551234567",
        "created_ms": T0,
        "updated_ms": T0,
        "expires_ms": T0 + 30 * 60_000,
        "address": ADDRESS,
        "address_index": 0,
        "amount_micro": 281_690_000,
        "rate": "35.5",
        "return_url": "https://shop.example/thanks?order=42",
        **fields,
    }
    async with transaction(sessions) as s:
        s.add(Payment.model_validate(values))


@pytest.fixture
async def client(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[httpx.AsyncClient]:
    async with transaction(sessions) as s:
        s.add(Merchant(id=1, name="Kahve <Dükkanı>", webhook_secret_enc="enc", created_ms=T0))
    app = FastAPI()
    install(app)
    app.include_router(router)
    app.state.services = FakeServices(sessions, T0 + 5 * 60_000)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://checkout.test") as c:
        yield c


async def test_the_page_shows_address_amounts_qr_and_deadline(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await add_payment(sessions)
    r = await client.get(f"/pay/{TXN}")
    assert r.status_code == 200
    html = r.text
    assert ADDRESS in html and ">281.69<" in html and "10,000.00" in html
    assert "1 USDT = 35.5 TRY" in html
    assert "TRC20" in html and "<svg" in html
    assert 'data-expires-in="1500000"' in html  # 25 minutes left, by the server's clock
    assert r.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]


async def test_the_page_shows_nothing_private_and_escapes_the_merchant_name(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await add_payment(sessions)
    html = (await client.get(f"/pay/{TXN}")).text
    assert "Kahve &lt;Dükkanı&gt;" in html and "<Dükkanı>" not in html
    for private in ("ayse@example.com", "+905551234567", "Ayşe", "enc"):
        assert private not in html.replace("encoding", "")


async def test_status_json_reports_partial_payment_and_what_is_still_due(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await add_payment(sessions, received_micro=100_000_000, confirming_micro=80_000_000)
    r = await client.get(f"/pay/{TXN}/status.json")
    st = jsonio.loads(r.content)
    assert st["status"] == "pending" and st["label"] == "Awaiting payment"
    assert st["receivedUsdt"] == Decimal("100.00")
    assert st["confirmingUsdt"] == Decimal("80.00")
    assert st["dueUsdt"] == Decimal("101.69")
    assert st["expiresInMs"] == 25 * 60_000 and st["expiresAt"] == "2026-09-21T14:43:20.000Z"
    assert st["partial"] is True and st["toSendUsdt"] == Decimal("101.69")
    html = (await client.get(f"/pay/{TXN}")).text
    assert "send the remaining" in html
    assert '<span id="amount">101.69</span>' in html and 'data-copy="101.69"' in html
    assert "180.00 USDT" in html and "281.69 USDT" in html


async def test_a_pool_tag_in_the_sixth_decimal_is_shown_exactly(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await add_payment(sessions, amount_micro=281_690_003)
    html = (await client.get(f"/pay/{TXN}")).text
    assert 'data-copy="281.690003"' in html


async def test_paid_page_offers_the_return_link(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await add_payment(sessions, status="completed", received_micro=281_690_000)
    html = (await client.get(f"/pay/{TXN}")).text
    assert 'href="https://shop.example/thanks?order=42"' in html
    assert "Payment received" in html


async def test_a_javascript_return_url_never_becomes_a_link(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await add_payment(sessions, status="completed", return_url="javascript:alert(1)")
    html = (await client.get(f"/pay/{TXN}")).text
    assert "javascript:" not in html and "Return to site" not in html


@pytest.mark.parametrize("pid", [TXN, "txn_" + "cd" * 16, "txn_%3Cscript%3E", "txn_" + "x" * 300])
async def test_unknown_or_malformed_ids_get_a_404_page(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], pid: str
) -> None:
    if pid != TXN:
        await add_payment(sessions)  # another payment exists; this id is still unknown
    r = await client.get(f"/pay/{pid}")
    assert r.status_code == 404 and "Payment not found" in r.text
    r = await client.get(f"/pay/{pid}/status.json")
    assert r.status_code == 404 and r.json()["error"]["code"] == "NOT_FOUND"


async def test_a_card_payment_has_no_crypto_checkout(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await add_payment(sessions, provider="card", address=None, amount_micro=None, rate=None)
    assert (await client.get(f"/pay/{TXN}")).status_code == 404


async def test_a_confirming_payment_asks_for_nothing_more(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await add_payment(sessions, status="confirming", confirming_micro=281_690_000)
    st = jsonio.loads((await client.get(f"/pay/{TXN}/status.json")).content)
    assert st["status"] == "confirming" and st["toSendUsdt"] == Decimal("0.00")
    html = (await client.get(f"/pay/{TXN}")).text
    # The send-this-amount block and the countdown are rendered hidden; the seen amount shows.
    assert '<div data-show="pending" hidden>' in html
    assert '<dt data-show="pending" hidden>Time left</dt>' in html
    assert '<span id="seen">281.69</span>' in html and "Nothing more to send" in html
    assert '<div data-show="confirming">' in html


async def test_an_expired_page_shows_what_arrived_before_and_after_the_deadline(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    # The payer who sent part of it must see that it arrived, not only "expired".
    await add_payment(sessions, status="expired", received_micro=100_000_000)
    html = (await client.get(f"/pay/{TXN}")).text
    expired = html[html.index('data-show="expired"') :]
    expired = expired[: expired.index("</section>")]
    assert '<strong><span id="kept-amount">100.00</span> USDT</strong> of 281.69 USDT' in expired
    assert "arrived before the deadline" in expired and "will settle it with you" in expired
    assert 'id="late" hidden' in expired


async def test_a_cancelled_page_shows_funds_that_arrived_after_all(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await add_payment(sessions, status="cancelled", late=True, late_micro=20_000_000)
    html = (await client.get(f"/pay/{TXN}")).text
    cancelled = html[html.index('data-show="cancelled"') :]
    cancelled = cancelled[: cancelled.index("</section>")]
    assert '<span id="cancelled-late-amount">20.00</span> USDT' in cancelled
    assert "arrived after the payment was cancelled" in cancelled
    st = jsonio.loads((await client.get(f"/pay/{TXN}/status.json")).content)
    assert (st["status"], st["lateUsdt"], st["receivedUsdt"]) == (
        "cancelled",
        Decimal("20.00"),
        Decimal("0.00"),
    )


TR = {"Accept-Language": "tr-TR,tr;q=0.9,en-US;q=0.8,en;q=0.7"}


async def test_a_turkish_browser_gets_the_page_in_turkish_with_tr_numbers(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await add_payment(sessions, amount_kurus=1_408_451_00, amount_micro=396_747_887_324)
    r = await client.get(f"/pay/{TXN}", headers=TR)
    html = r.text
    assert r.headers["content-language"] == "tr" and '<html lang="tr">' in html
    assert "Ödeme bekleniyor" in html and "Tam olarak gönderin" in html
    assert "1.408.451,00 <small>TRY</small>" in html  # tr-TR: dot groups, comma decimals
    assert '<span id="amount">396.747,887324</span>' in html
    assert "1 USDT = 35,5 TRY" in html
    # what the copy button puts on the clipboard stays plain, for wallets to parse
    assert 'data-copy="396747.887324"' in html
    assert 'data-lang="tr"' in html and 'data-t-copied="Kopyalandı"' in html
    assert f'data-status-url="/pay/{TXN}/status.json?lang=tr"' in html
    st = jsonio.loads((await client.get(f"/pay/{TXN}/status.json?lang=tr")).content)
    assert st["label"] == "Ödeme bekleniyor" and st["toSendUsdt"] == Decimal("396747.887324")


@pytest.mark.parametrize(
    ("accept", "query", "lang"),
    [
        ("tr-TR,tr;q=0.9", None, "tr"),
        ("en-US,en;q=0.9,tr;q=0.8", None, "en"),
        ("en;q=0.5, tr;q=0.9", None, "tr"),  # q weights, not order
        ("de-DE,fr;q=0.9", None, "en"),  # neither offered: English
        (None, None, "en"),
        ("tr-TR", "en", "en"),  # the page's switch wins
        ("en-US", "tr", "tr"),
        ("tr-TR", "xx", "tr"),  # an unknown choice is ignored
        ("tr;q=abc, en", None, "en"),  # a malformed weight counts as 0
    ],
)
async def test_the_language_follows_the_switch_then_accept_language(
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    accept: str | None,
    query: str | None,
    lang: str,
) -> None:
    await add_payment(sessions)
    headers = {"Accept-Language": accept} if accept else {}
    params = {"lang": query} if query else {}
    r = await client.get(f"/pay/{TXN}", headers=headers, params=params)
    assert r.headers["content-language"] == lang and f'<html lang="{lang}">' in r.text
    # the switch offers both, marking the current one
    assert '<a href="?lang=tr" hreflang="tr" lang="tr"' in r.text
    assert f'hreflang="{lang}" lang="{lang}" aria-current="true"' in r.text


async def test_turkish_outcome_pages_escape_the_merchant_name(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await add_payment(
        sessions, status="expired", received_micro=100_000_000, late=True, late_micro=5_000_000
    )
    html = (await client.get(f"/pay/{TXN}", headers=TR)).text
    expired = html[html.index('data-show="expired"') :]
    expired = expired[: expired.index("</section>")]
    assert "Bu ödemenin süresi doldu" in expired
    assert '281,69 USDT\'nin <strong><span id="kept-amount">100,00</span> USDT</strong>' in expired
    assert '<strong><span id="late-amount">5,00</span> USDT</strong> süre dolduktan' in expired
    assert "Kahve &lt;Dükkanı&gt; bilgilendirildi" in expired and "<Dükkanı>" not in html
    missing = await client.get("/pay/txn_" + "cd" * 16, headers=TR)
    assert missing.status_code == 404 and "Ödeme bulunamadı" in missing.text
