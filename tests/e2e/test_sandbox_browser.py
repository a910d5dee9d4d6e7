"""The sandbox card page in a real headless Chromium: seed 000's four test cards, typed into the
form as a payer would, and what each payment ended as. Screenshots land in tests/artifacts/."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from tests.support.cards import CardHarness, card_harness

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
