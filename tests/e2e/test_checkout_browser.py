"""The hosted checkout page in a real headless Chromium: a payer's view from create to paid.

A payment is created through the merchant API (fake Binance on loopback, HD addresses), the
page is opened, its address and amount read, and the payment row is changed in the database
the way the chain follower would; the page must follow without a reload. Screenshots land in
tests/artifacts/.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect
from sqlalchemy import update
from sqlmodel import col
from starlette.applications import Starlette

from tests.integration.conftest import api_settings
from tests.support.servers import serve_asgi
from watcher.api.app import create_app
from watcher.clock import now_ms
from watcher.db.models import ChainCursor, Payment
from watcher.devchain.binance import FakeBinance
from watcher.merchants import create_merchant
from watcher.services import Services, build_services
from watcher.wallets.hd import DEMO_XPUB, HdDeriver

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
RETURN_URL = "https://shop.example/orders/42/thanks"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("db_kind", ["sqlite"]),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed"),
]

Create = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
            ],
        )
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
async def phone(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(
        viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True
    )
    try:
        yield await context.new_page()
    finally:
        await context.close()


@pytest.fixture
async def shop(db_url: str) -> AsyncIterator[tuple[Services, Create]]:
    """The API on loopback; yields its services and a `create(**fields)` for the shop."""
    async with serve_asgi(_binance(FakeBinance(Decimal("35.50")))) as binance_url:
        settings = api_settings(db_url, binance_url)
        async with build_services(settings) as services:
            async with services.sessions() as s, s.begin():
                s.add(ChainCursor(name="seen", block_number=1_000, updated_ms=now_ms()))
                merchant = await create_merchant(s, services.box, "Kahve Dükkanı")
            app = create_app(services)
            app.state.checkout_poll_ms = 200  # the page polls every 3 s in production
            async with serve_asgi(app) as url, httpx.AsyncClient(base_url=url) as http:
                services.settings.api.public_url = url

                async def create(**fields: Any) -> dict[str, Any]:
                    body = {"amount": 10000, "fullName": "Ayşe Yılmaz", "provider": "crypto"}
                    resp = await http.post(
                        "/api/payment/create",
                        json={**body, **fields},
                        headers={"x-api-key": merchant.api_key},
                    )
                    assert resp.status_code == 200, resp.text
                    return dict(resp.json())

                yield services, create


def _binance(fake: FakeBinance) -> Starlette:
    return Starlette(routes=fake.routes())


async def _set(services: Services, payment_id: str, **values: Any) -> None:
    """Change the payment as the chain follower would."""
    async with services.sessions() as s, s.begin():
        await s.execute(update(Payment).where(col(Payment.id) == payment_id).values(**values))


async def _shot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    await page.screenshot(path=str(path), full_page=True)
    return path


async def test_the_payer_sees_address_and_amount_then_confirming_then_paid(
    shop: tuple[Services, Create], phone: Page
) -> None:
    services, create = shop
    created = await create(externalRef="ORD-42", returnUrl=RETURN_URL)
    txn, data = created["transactionId"], created["data"]
    assert data["walletAddress"] == HdDeriver(DEMO_XPUB).address(0)

    await phone.goto(created["paymentUrl"])
    assert await phone.locator("#address").inner_text() == data["walletAddress"]
    assert Decimal(await phone.locator("#amount").inner_text()) == Decimal("281.69")
    await expect(phone.locator("#status")).to_have_text("Awaiting payment")
    await expect(phone.locator("#countdown")).to_have_text(re.compile(r"^\d+:\d\d$"))
    await expect(phone.locator(".qr svg")).to_be_visible()
    await expect(phone.get_by_text("USDT on TRON (TRC20) only.")).to_be_visible()
    print(f"\nscreenshot: {await _shot(phone, 'checkout-pending.png')}")

    await _set(services, txn, received_micro=100_000_000)
    await expect(phone.locator("#amount")).to_have_text("181.69")
    await expect(phone.locator("#send-label")).to_have_text("Partly paid: send the remaining")
    await expect(phone.locator("#received")).to_have_text("100.00 USDT")
    await _shot(phone, "checkout-partial.png")

    await _set(services, txn, status="confirming", confirming_micro=181_690_000)
    await expect(phone.locator("#status")).to_have_text("Confirming")
    await expect(phone.get_by_text("waiting for confirmations")).to_be_visible()
    await expect(phone.locator("#seen")).to_have_text("281.69")
    await expect(phone.locator("#address")).to_be_hidden()  # nothing more to send
    await expect(phone.locator("#countdown")).to_be_hidden()

    await _set(services, txn, status="completed", received_micro=281_690_000, confirming_micro=0)
    await expect(phone.get_by_role("heading", name="Payment received")).to_be_visible()
    await expect(phone.locator("#status")).to_have_text("Paid")
    back = phone.get_by_role("link", name="Return to site")
    await expect(back).to_have_attribute("href", RETURN_URL)
    await expect(phone.locator("#address")).to_be_hidden()
    print(f"screenshot: {await _shot(phone, 'checkout-paid.png')}")


async def test_the_copy_button_puts_the_bare_address_on_the_clipboard(
    shop: tuple[Services, Create], browser: Browser
) -> None:
    _, create = shop
    created = await create(externalRef="ORD-COPY")
    context = await browser.new_context(permissions=["clipboard-read", "clipboard-write"])
    try:
        page = await context.new_page()
        await page.goto(created["paymentUrl"])
        await page.get_by_role("button", name="Copy address").click()
        button = page.locator("button.copy-address")  # its name changes to "Copied"
        await expect(button).to_have_text("Copied")
        copied = await page.evaluate("() => navigator.clipboard.readText()")
        assert copied == created["data"]["walletAddress"]
    finally:
        await context.close()


async def test_a_pending_page_turns_expired_live_and_cancelled_and_unknown_have_views(
    shop: tuple[Services, Create], phone: Page
) -> None:
    services, create = shop
    expired = await create(externalRef="ORD-EXP", returnUrl=RETURN_URL)
    cancelled = await create(externalRef="ORD-CXL")
    await _set(
        services, cancelled["transactionId"], status="cancelled", late=True, late_micro=20_000_000
    )

    await phone.goto(expired["paymentUrl"])
    await expect(phone.locator("#status")).to_have_text("Awaiting payment")
    await _set(  # the expirer closes it: part came in time, more after the deadline
        services,
        expired["transactionId"],
        status="expired",
        received_micro=100_000_000,
        late=True,
        late_micro=50_000_000,
    )
    await expect(phone.get_by_role("heading", name="This payment has expired")).to_be_visible()
    await expect(phone.locator("#kept")).to_contain_text("100.00 USDT of 281.69 USDT arrived")
    await expect(phone.locator("#late")).to_contain_text("50.00 USDT")
    await expect(phone.locator("#address")).to_be_hidden()
    await _shot(phone, "checkout-expired.png")

    await phone.goto(cancelled["paymentUrl"])
    await expect(phone.get_by_role("heading", name="This payment was cancelled")).to_be_visible()
    await expect(phone.locator("#cancelled-late")).to_contain_text("20.00 USDT arrived after")
    await expect(phone.locator("#kept")).to_be_hidden()

    response = await phone.goto(expired["paymentUrl"].rsplit("/", 1)[0] + "/txn_" + "0" * 32)
    assert response is not None and response.status == 404
    await expect(phone.get_by_role("heading", name="Payment not found")).to_be_visible()


@pytest.fixture
async def turkish_phone(browser: Browser) -> AsyncIterator[Page]:
    """A phone whose browser asks for Turkish (Accept-Language: tr-TR)."""
    context = await browser.new_context(
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        locale="tr-TR",
        permissions=["clipboard-read", "clipboard-write"],
    )
    try:
        yield await context.new_page()
    finally:
        await context.close()


async def test_a_turkish_payer_sees_every_state_in_turkish_and_can_switch(
    shop: tuple[Services, Create], turkish_phone: Page
) -> None:
    services, create = shop
    page = turkish_phone
    created = await create(amount=50000, externalRef="ORD-TR", returnUrl=RETURN_URL)
    txn = created["transactionId"]
    await page.goto(created["paymentUrl"])
    await expect(page.locator("#status")).to_have_text("Ödeme bekleniyor")
    await expect(page.locator("#amount")).to_have_text("1.408,45")  # tr-TR: 1408.45 USDT
    await expect(page.locator(".try")).to_contain_text("50.000,00 TRY")
    await expect(page.get_by_text("Yalnızca TRON (TRC20) ağında USDT gönderin.")).to_be_visible()
    await page.get_by_role("button", name="Tutarı kopyala").click()
    await expect(page.locator("button.copy-amount")).to_have_text("Kopyalandı")
    assert await page.evaluate("() => navigator.clipboard.readText()") == "1408.45"
    await _shot(page, "checkout-tr-pending.png")

    await _set(services, txn, received_micro=1_000_000_000)  # live update, no reload
    await expect(page.locator("#send-label")).to_have_text("Kısmen ödendi: kalan tutarı gönderin")
    await expect(page.locator("#amount")).to_have_text("408,45")
    await expect(page.locator("#received")).to_have_text("1.000,00 USDT")
    await _shot(page, "checkout-tr-partial.png")

    await _set(services, txn, status="confirming", confirming_micro=408_450_000)
    await expect(page.locator("#status")).to_have_text("Onaylanıyor")
    await expect(page.locator("#seen")).to_have_text("1.408,45")
    await _shot(page, "checkout-tr-confirming.png")

    await _set(services, txn, status="completed", received_micro=1_408_450_000, confirming_micro=0)
    await expect(page.get_by_role("heading", name="Ödeme alındı")).to_be_visible()
    await expect(page.locator("#paid")).to_have_text("1.408,45")
    await expect(page.get_by_role("link", name="Siteye dön")).to_have_attribute("href", RETURN_URL)
    await _shot(page, "checkout-tr-paid.png")

    await page.get_by_role("link", name="English").click()  # the switch
    await expect(page.get_by_role("heading", name="Payment received")).to_be_visible()
    await expect(page.locator("#paid")).to_have_text("1408.45")
    await _shot(page, "checkout-en-paid.png")

    expired = await create(externalRef="ORD-TR-EXP")
    await _set(
        services,
        expired["transactionId"],
        status="expired",
        received_micro=100_000_000,
        late=True,
        late_micro=50_000_000,
    )
    await page.goto(expired["paymentUrl"])
    await expect(page.get_by_role("heading", name="Bu ödemenin süresi doldu")).to_be_visible()
    await expect(page.locator("#kept")).to_contain_text("100,00 USDT")
    await expect(page.locator("#late")).to_contain_text("50,00 USDT süre dolduktan sonra")
    await _shot(page, "checkout-tr-expired.png")

    cancelled = await create(externalRef="ORD-TR-CXL")
    await _set(services, cancelled["transactionId"], status="cancelled")
    await page.goto(cancelled["paymentUrl"])
    await expect(page.get_by_role("heading", name="Bu ödeme iptal edildi")).to_be_visible()
    await _shot(page, "checkout-tr-cancelled.png")

    await page.goto(created["paymentUrl"].rsplit("/", 1)[0] + "/txn_" + "0" * 32)
    await expect(page.get_by_role("heading", name="Ödeme bulunamadı")).to_be_visible()
    await _shot(page, "checkout-tr-not-found.png")
