"""The sandbox page in a real headless Chromium: seed 000's four test cards, typed into the
form as a payer would, and what each payment ended as; the page in Turkish and English, the
bank and wallet buttons; a bank-transfer payer's page. Screenshots land in tests/artifacts/
(docs/checkout.md shows them)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from tests.support.cards import CardHarness, card_harness
from tests.support.providers import ProviderHarness, provider_harness

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("db_kind", ["sqlite"]),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed"),
]


@pytest.fixture
async def page() -> AsyncIterator[Page]:
    async with async_playwright() as pw:
        browser: Browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            context = await browser.new_context(viewport={"width": 390, "height": 844})
            yield await context.new_page()
        finally:
            await browser.close()


@pytest.fixture
async def cards(db_url: str) -> AsyncIterator[CardHarness]:
    async with card_harness(db_url) as harness:
        yield harness


@pytest.mark.parametrize(
    ("number", "three_ds", "status", "shown"),
    [
        ("4242 4242 4242 4242", None, "completed", "Payment received"),
        ("4000 0000 0000 0002", None, "failed", "The card was declined."),
        ("4000 0000 0000 9995", None, "failed", "The card has insufficient funds."),
        ("4000 0025 0000 3155", "Approve", "completed", "Payment received"),
        ("4000 0025 0000 3155", "Refuse", "failed", "The 3-D Secure check was refused."),
    ],
)
async def test_a_payer_pays_with_each_test_card(
    cards: CardHarness, page: Page, number: str, three_ds: str | None, status: str, shown: str
) -> None:
    key = cards.merchant.test_api_key
    created = await cards.card(key, externalRef=f"ORD-{number[-4:]}-{three_ds}")
    txn = created.json()["transactionId"]
    assert created.json()["provider"] == "sandbox"
    await page.goto(f"{cards.url}/sandbox/pay/{txn}")
    await expect(page.locator("#status")).to_have_text("Awaiting payment")
    await page.fill("input[autocomplete=cc-number]", number)
    await page.fill("input[autocomplete=cc-exp]", "12/34")
    await page.fill("input[autocomplete=cc-csc]", "123")
    await page.click("#card-form button[type=submit]")
    if three_ds:
        await expect(page.locator("#three-d-secure")).to_be_visible()
        await page.get_by_role("button", name=three_ds).click()
    await expect(page.locator("body")).to_contain_text(shown)
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"sandbox-{number[-4:]}-{three_ds or 'plain'}.png"))
    state = await cards.status(txn, key)
    assert (state["status"], state["livemode"]) == (status, False)
    print(f"card {number} {three_ds or ''} -> {state['status']}: {shown}")


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        launched = await pw.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            yield launched
        finally:
            await launched.close()


async def _phone(browser: Browser, locale: str) -> Page:
    """A phone whose browser asks for `locale` (Accept-Language follows it)."""
    context = await browser.new_context(
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        locale=locale,
        permissions=["clipboard-read", "clipboard-write"],
    )
    return await context.new_page()


async def _shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / name), full_page=True)


@pytest.fixture
async def every_method(db_url: str) -> AsyncIterator[ProviderHarness]:
    providers = {"card": "acidpanel", "bank": "acidpanel", "wallet": "kazawallet"}
    async with provider_harness(db_url, providers=providers) as harness:
        yield harness


async def test_the_sandbox_page_in_turkish_and_english_card_3ds_outcomes_bank_and_wallet(
    every_method: ProviderHarness, browser: Browser
) -> None:
    shop, key = every_method, every_method.merchant.test_api_key
    tr, en = await _phone(browser, "tr-TR"), await _phone(browser, "en-US")

    async def page_of(method: str, ref: str, **fields: object) -> str:
        created = await shop.pay(method, key, externalRef=ref, amount=12500, **fields)
        assert created.json()["provider"] == "sandbox", created.text
        return f"{shop.url}/sandbox/pay/{created.json()['transactionId']}"

    # a card payment, in Turkish: the form, a refused number, 3-D Secure, then paid
    await tr.goto(await page_of("card", "SBX-TR-CARD"))
    await expect(tr.locator("#status")).to_have_text("Ödeme bekleniyor")
    await expect(tr.locator(".try")).to_contain_text("12.500,00 TRY")
    await expect(tr.get_by_label("Kart numarası")).to_be_visible()
    await _shot(tr, "sandbox-tr-card.png")
    await tr.fill("input[autocomplete=cc-number]", "4111 1111 1111 1111")
    await tr.fill("input[autocomplete=cc-exp]", "12/34")
    await tr.fill("input[autocomplete=cc-csc]", "123")
    await tr.get_by_role("button", name="12.500,00 TRY öde").click()
    await expect(tr.locator("#error")).to_contain_text("Burası sandbox: bir test kartı kullanın")
    await tr.fill("input[autocomplete=cc-number]", "4000 0025 0000 3155")
    await tr.fill("input[autocomplete=cc-csc]", "123")
    await tr.get_by_role("button", name="12.500,00 TRY öde").click()
    await expect(tr.locator("#three-d-secure")).to_contain_text("Bankanız")
    await _shot(tr, "sandbox-tr-3ds.png")
    await tr.get_by_role("button", name="Onayla").click()
    await expect(tr.get_by_role("heading", name="Ödeme alındı")).to_be_visible()
    await expect(tr.locator("#status")).to_have_text("Ödendi")
    await _shot(tr, "sandbox-tr-paid.png")

    # declined, in English
    await en.goto(await page_of("card", "SBX-EN-CARD"))
    await expect(en.get_by_label("Card number")).to_be_visible()
    await _shot(en, "sandbox-en-card.png")
    await en.fill("input[autocomplete=cc-number]", "4000 0000 0000 0002")
    await en.fill("input[autocomplete=cc-exp]", "12/34")
    await en.fill("input[autocomplete=cc-csc]", "123")
    await en.get_by_role("button", name="Pay 12,500.00 TRY").click()
    await expect(en.locator("#reason")).to_have_text("The card was declined.")
    await _shot(en, "sandbox-en-declined.png")

    # bank and wallet: the buttons, and what each ends as; the switch keeps the language
    await tr.goto(await page_of("bank", "SBX-TR-BANK", email=None, phone=None))
    await expect(tr.locator("main")).to_contain_text("Sandbox havale ödemesi")
    await _shot(tr, "sandbox-tr-bank.png")
    await tr.get_by_role("link", name="English").click()
    await expect(tr.get_by_role("button", name="Complete")).to_be_visible()
    await tr.get_by_role("button", name="Complete").click()
    await expect(tr.get_by_role("heading", name="Payment received")).to_be_visible()
    assert tr.url.endswith("?lang=en")

    await en.goto(await page_of("wallet", "SBX-EN-WALLET", email=None, phone=None))
    await expect(en.locator("main")).to_contain_text("Sandbox wallet payment")
    await _shot(en, "sandbox-en-wallet.png")
    await en.get_by_role("button", name="Expire").click()
    await expect(en.get_by_role("heading", name="This payment has expired")).to_be_visible()
    await _shot(en, "sandbox-en-expired.png")
    await tr.goto(await page_of("wallet", "SBX-TR-WALLET"))
    await tr.get_by_role("button", name="Başarısız yap").click()
    await expect(tr.get_by_role("heading", name="Bu ödeme başarısız oldu")).to_be_visible()
    await expect(tr.locator("#reason")).to_have_text("Ödeme başarısız oldu (sandbox).")
    await _shot(tr, "sandbox-tr-failed.png")
    assert shop.acidpanel.requests == [] and shop.kazawallet.requests == []


async def test_a_bank_transfer_payer_sees_the_account_and_copies_the_iban(
    db_url: str, browser: Browser
) -> None:
    providers = {
        "bank": "banktransfer",
        "banktransfer": {
            "webhook_token": "bt_9f3c1d2e7a6b5c4d3e2f1a0b",
            "bank_name": "Ziraat Bankası",
            "account_name": "Kasa Dükkân Ltd. Şti.",
            "iban": "TR330006100519786457841326",
        },
    }
    async with provider_harness(db_url, providers=providers) as shop:
        created = await shop.pay("bank", amount=3000, email=None, phone=None)
        txn = created.json()["transactionId"]
        tr = await _phone(browser, "tr-TR")
        await tr.goto(f"{shop.url}/pay/{txn}")
        await expect(tr.locator("#iban")).to_have_text("TR33 0006 1005 1978 6457 8413 26")
        await expect(tr.locator("#reference")).to_have_text(txn)
        await expect(tr.locator("#bank-transfer")).to_contain_text("3.000,00 TRY")
        await tr.get_by_role("button", name="IBAN'ı kopyala").click()
        await expect(tr.get_by_role("button", name="Kopyalandı")).to_be_visible()
        assert await tr.evaluate("() => navigator.clipboard.readText()") == (
            "TR330006100519786457841326"
        )
        await _shot(tr, "pay-tr-bank-transfer.png")
