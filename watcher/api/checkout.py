"""The hosted checkout page: GET /pay/{id} (HTML) and GET /pay/{id}/status.json (live status).

Public (the id is the only secret: `txn_` + 128 random bits), so it shows only what the payer
needs: the merchant's name, the amounts, the address, the deadline and the status. The page
is server-rendered; a small inline script polls status.json and switches between the open,
paid, expired and cancelled views without a reload. The countdown runs on the server's idea
of the time left, so a payer's wrong clock does not show a wrong deadline. It speaks Turkish
or English (watcher.api.i18n): `?lang=`, else the browser's Accept-Language.
"""

from __future__ import annotations

import functools
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import segno
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from watcher import jsonio
from watcher.api import i18n
from watcher.api.pages import http_url, payment_and_merchant
from watcher.api.provider_page import provider_view, render
from watcher.clock import iso
from watcher.errors import NotFound
from watcher.money import canonical, from_kurus, from_micro
from watcher.payments.states import OPEN_STATES
from watcher.services import Services

router = APIRouter()

POLL_MS = 3000  # how often the page asks for the status; app.state.checkout_poll_ms overrides


@dataclass(frozen=True)
class CheckoutView:
    """What the page shows of a payment; nothing here is secret."""

    id: str
    merchant: str
    sandbox: bool
    status: str
    address: str
    amount_try: Decimal
    amount_usdt: Decimal
    received_usdt: Decimal
    confirming_usdt: Decimal
    due_usdt: Decimal
    partial: bool  # some funds arrived, not enough: the payer sends the rest
    late_usdt: Decimal
    late: bool
    rate: Decimal
    expires_ms: int
    expires_in_ms: int
    return_url: str | None
    cancel_url: str | None

    @property
    def to_send_usdt(self) -> Decimal:
        """What the payer still has to send: nothing once the full amount is on its way."""
        return self.due_usdt

    @property
    def expires_at_text(self) -> str:
        return datetime.fromtimestamp(self.expires_ms / 1000, tz=UTC).strftime("%H:%M UTC")

    def label(self, lang: str) -> str:
        return i18n.MESSAGES[lang].get(self.status, self.status)

    def status_json(self, lang: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "label": self.label(lang),
            "amountUsdt": self.amount_usdt,
            "receivedUsdt": self.received_usdt,
            "confirmingUsdt": self.confirming_usdt,
            "dueUsdt": self.due_usdt,
            "partial": self.partial,
            "toSendUsdt": self.to_send_usdt,
            "late": self.late,
            "lateUsdt": self.late_usdt,
            "expiresAt": iso(self.expires_ms),
            "expiresInMs": self.expires_in_ms,
        }


def _usdt(micro: int) -> Decimal:
    """Exact, with at least 2 decimals: 281.69, 281.690001."""
    d = from_micro(micro).normalize()
    return d if -int(d.as_tuple().exponent) >= 2 else d.quantize(Decimal("0.01"))


async def _view(services: Services, payment_id: str) -> CheckoutView | None:
    async with services.sessions() as session:
        row = await payment_and_merchant(session, payment_id)
    if row is None:
        return None
    p, merchant = row
    if not p.address:  # the page of a payment paid to a deposit address
        return None
    amount = p.amount_micro or 0
    due = max(0, amount - p.received_micro - p.confirming_micro)
    return CheckoutView(
        id=p.id,
        merchant=merchant,
        sandbox=p.sandbox,
        status=p.status,
        address=p.address,
        amount_try=from_kurus(p.amount_kurus),
        amount_usdt=_usdt(amount),
        received_usdt=_usdt(p.received_micro),
        confirming_usdt=_usdt(p.confirming_micro),
        due_usdt=_usdt(due),
        partial=0 < due < amount,
        late_usdt=_usdt(p.late_micro),
        late=p.late,
        rate=Decimal(p.rate or "0"),
        expires_ms=p.expires_ms,
        expires_in_ms=max(0, p.expires_ms - services.clock()),
        return_url=http_url(p.return_url),
        cancel_url=http_url(p.cancel_url),
    )


def _templates(request: Request) -> Environment:
    """One Jinja environment per app, made on first use (no work at import)."""
    env: Environment | None = getattr(request.app.state, "checkout_templates", None)
    if env is None:
        env = Environment(
            loader=PackageLoader("watcher.api", "templates"),
            autoescape=select_autoescape(default=True),
        )
        env.filters["rate"] = lambda d, lang: i18n.plain(Decimal(canonical(d)), lang)
        env.filters["plain"] = i18n.plain
        env.filters["grouped"] = i18n.grouped
        env.globals["span"] = _span
        env.globals["languages"] = list(i18n.LANGUAGE_NAMES.items())
        request.app.state.checkout_templates = env
    return env


@functools.lru_cache(maxsize=1024)
def _qr_svg(address: str) -> str:
    """The address as a QR code: the page's costliest part (a few ms), and the same each
    time the page of a payment is opened or reloaded."""
    return str(segno.make(address, error="m").svg_inline(scale=1, border=2, omitsize=True))


def _span(element_id: str, text: str) -> Markup:
    """A number the page's script updates in place."""
    return Markup('<span id="{}">{}</span>').format(element_id, text)


def _language(request: Request) -> str:
    return i18n.negotiate(request.query_params.get("lang"), request.headers.get("accept-language"))


def _headers(nonce: str, lang: str) -> dict[str, str]:
    return {
        "Content-Language": lang,
        "Vary": "Accept-Language",
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Content-Security-Policy": (
            f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
            "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
            "frame-ancestors 'none'"
        ),
    }


@router.get("/pay/{payment_id}", response_class=HTMLResponse, include_in_schema=False)
async def checkout_page(payment_id: str, request: Request) -> HTMLResponse:
    services: Services = request.app.state.services
    view = await _view(services, payment_id)
    if view is None:  # not paid to a deposit address: a card, bank or wallet payment?
        other = await provider_view(services, payment_id)
        if other is not None:
            return render(request, other)
    nonce = secrets.token_urlsafe(16)
    lang = _language(request)
    template = _templates(request).get_template("checkout.html")
    t = i18n.translator(lang)
    if view is None:
        html = template.render(view=None, nonce=nonce, lang=lang, t=t)
        return HTMLResponse(html, status_code=404, headers=_headers(nonce, lang))
    qr = _qr_svg(view.address)
    html = template.render(
        view=view,
        qr=qr,
        label=view.label(lang),
        open_states=OPEN_STATES,
        poll_ms=getattr(request.app.state, "checkout_poll_ms", POLL_MS),
        nonce=nonce,
        lang=lang,
        t=t,
    )
    return HTMLResponse(html, headers=_headers(nonce, lang))


@router.get("/pay/{payment_id}/status.json", include_in_schema=False)
async def checkout_status(payment_id: str, request: Request) -> Response:
    view = await _view(request.app.state.services, payment_id)
    if view is None:
        raise NotFound("no such payment")
    return Response(
        jsonio.dumps(view.status_json(_language(request))),
        media_type="application/json",
        headers={"Cache-Control": "no-store"},
    )
