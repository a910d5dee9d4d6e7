"""The payer's page of a card, bank or wallet payment: /pay/{id} (its status, and the way to
the provider's payment page, or for a bank transfer the operator's account and the reference
to quote) and, for test-mode payments, /sandbox/pay/{id}.

Public (the id is the only secret), so it shows only what the payer needs. Turkish or
English, as the checkout page (watcher.api.i18n).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup
from sqlalchemy import select
from sqlmodel import col

from watcher.api import i18n
from watcher.api.pages import http_url, language, page_headers, payment_and_merchant, templates
from watcher.db.models import PaymentReport
from watcher.money import from_kurus
from watcher.payments.states import COMPLETED
from watcher.providers.banktransfer import NAME as BANK_TRANSFER
from watcher.services import Services

# Reasons the page words itself; any other is quoted as the provider gave it.
REASONS = frozenset(
    {
        "card_declined",
        "insufficient_funds",
        "authentication_failed",
        "sandbox_failed",
        "amount_mismatch",
        "currency_mismatch",
    }
)


@dataclass(frozen=True)
class BankAccount:
    """Where a bank-transfer payer sends the money (the operator's account, from settings)."""

    bank_name: str
    account_name: str
    iban: str

    @property
    def iban_grouped(self) -> str:
        """TR33 0006 1005 1978 6457 8413 26: how banks print an IBAN, easier to copy by eye."""
        compact = self.iban.replace(" ", "")
        return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))


@dataclass(frozen=True)
class ProviderView:
    id: str
    merchant: str
    sandbox: bool
    status: str
    method: str
    provider: str | None
    amount_try: Decimal
    full_name: str
    expires_ms: int
    pay_url: str | None
    return_url: str | None
    cancel_url: str | None
    reason: str | None
    bank: BankAccount | None  # a bank transfer's account, shown while it is open

    @property
    def expires_at_text(self) -> str:
        return datetime.fromtimestamp(self.expires_ms / 1000, tz=UTC).strftime("%H:%M UTC")

    def reason_text(self, t: i18n.Translate) -> Markup:
        if self.reason is None:
            return t("failed_text")
        if self.reason in REASONS:
            return t(f"reason_{self.reason}")
        return t("reason_other", reason=self.reason)

    @property
    def back_url(self) -> str | None:
        if self.status == COMPLETED:
            return self.return_url
        return self.cancel_url or self.return_url


async def provider_view(services: Services, payment_id: str) -> ProviderView | None:
    async with services.sessions() as session:
        row = await payment_and_merchant(session, payment_id)
        if row is None or row[0].provider_name is None:
            return None
        reason = (
            await session.execute(
                select(col(PaymentReport.reason))
                .where(col(PaymentReport.payment_id) == payment_id)
                .order_by(col(PaymentReport.id).desc())
                .limit(1)
            )
        ).scalar_one_or_none()
    p, merchant = row
    bank = None
    if p.provider_name == BANK_TRANSFER:
        account = services.settings.providers.banktransfer
        bank = BankAccount(account.bank_name, account.account_name, account.iban)
    return ProviderView(
        id=p.id,
        merchant=merchant,
        sandbox=p.sandbox,
        status=p.status,
        method=p.provider,
        provider=p.provider_name,
        amount_try=from_kurus(p.amount_kurus),
        full_name=p.full_name,
        expires_ms=p.expires_ms,
        pay_url=http_url(p.redirect_url),
        return_url=http_url(p.return_url),
        cancel_url=http_url(p.cancel_url),
        reason=reason,
        bank=bank,
    )


def render(
    request: Request,
    view: ProviderView | None,
    *,
    status_code: int = 200,
    forms: bool = False,
    **extra: Any,
) -> HTMLResponse:
    nonce = secrets.token_urlsafe(16)
    lang = language(request)
    context: dict[str, Any] = {
        "sandbox_page": False,
        "step": None,
        "error": None,
        "form": {"number": "", "expiry": ""},
    }
    context.update(extra)
    template = templates(request).get_template("provider.html")
    html = template.render(view=view, nonce=nonce, lang=lang, t=i18n.translator(lang), **context)
    headers = page_headers(nonce, lang, forms=forms)
    return HTMLResponse(html, status_code=status_code, headers=headers)
