"""The payer's page of a card, bank or wallet payment: /pay/{id} (its status, and the way to
the provider's payment page) and, for test-mode payments, /sandbox/pay/{id}.

Public (the id is the only secret), so it shows only what the payer needs.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select
from sqlmodel import col

from watcher.api.pages import LABELS, http_url, page_headers, payment_and_merchant, templates
from watcher.db.models import PaymentReport
from watcher.money import from_kurus
from watcher.payments.states import COMPLETED
from watcher.services import Services

REASONS = {
    "card_declined": "The card was declined.",
    "insufficient_funds": "The card has insufficient funds.",
    "authentication_failed": "The 3-D Secure check was refused.",
}


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

    @property
    def expires_at_text(self) -> str:
        return datetime.fromtimestamp(self.expires_ms / 1000, tz=UTC).strftime("%H:%M UTC")

    @property
    def reason_text(self) -> str:
        if self.reason is None:
            return "Start a new payment from the shop."
        return REASONS.get(self.reason, f"The provider said: {self.reason}.")

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
    context: dict[str, Any] = {
        "sandbox_page": False,
        "step": None,
        "error": None,
        "form": {"number": "", "expiry": ""},
    }
    context.update(extra)
    template = templates(request).get_template("provider.html")
    html = template.render(view=view, labels=LABELS, nonce=nonce, **context)
    return HTMLResponse(html, status_code=status_code, headers=page_headers(nonce, forms=forms))
