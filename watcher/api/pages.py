"""What the payer's pages of card, bank and wallet payments share (/pay/{id} of such a payment
and the sandbox page): the templates, the payer's language, the security headers."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from fastapi import Request
from jinja2 import Environment, PackageLoader, select_autoescape
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from watcher.api import i18n
from watcher.db.models import Merchant, Payment
from watcher.money import canonical

_ID = re.compile(r"txn_[0-9a-f]{16,36}")


def is_payment_id(text: str) -> bool:
    return _ID.fullmatch(text) is not None


async def payment_and_merchant(
    session: AsyncSession, payment_id: str
) -> tuple[Payment, str] | None:
    """The payment a public page shows, and its merchant's name; None for an unknown id."""
    if not is_payment_id(payment_id):
        return None
    row = (
        await session.execute(
            select(Payment, col(Merchant.name))
            .join(Merchant, col(Merchant.id) == col(Payment.merchant_id))
            .where(col(Payment.id) == payment_id)
        )
    ).first()
    return None if row is None else (row[0], row[1])


def http_url(url: str | None) -> str | None:
    """Only http(s) links reach a page (never `javascript:`)."""
    if url and urlsplit(url).scheme in ("http", "https"):
        return url
    return None


def templates(request: Request) -> Environment:
    """One Jinja environment per app, made on first use (no work at import)."""
    env: Environment | None = getattr(request.app.state, "provider_templates", None)
    if env is None:
        env = Environment(
            loader=PackageLoader("watcher.api", "templates"),
            autoescape=select_autoescape(default=True),
        )
        env.filters["canonical"] = canonical
        env.filters["grouped"] = i18n.grouped
        env.globals["languages"] = list(i18n.LANGUAGE_NAMES.items())
        request.app.state.provider_templates = env
    return env


def language(request: Request) -> str:
    """The payer's language: `?lang=`, else the browser's Accept-Language."""
    return i18n.negotiate(request.query_params.get("lang"), request.headers.get("accept-language"))


def page_headers(nonce: str, lang: str, *, forms: bool = False) -> dict[str, str]:
    """No caching, no framing, no referrer, scripts and styles only with the page's nonce;
    forms may post only back to us (the sandbox page), or nowhere."""
    form_action = "'self'" if forms else "'none'"
    return {
        "Content-Language": lang,
        "Vary": "Accept-Language",
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Content-Security-Policy": (
            f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
            f"connect-src 'self'; img-src 'self' data:; base-uri 'none'; "
            f"form-action {form_action}; frame-ancestors 'none'"
        ),
    }
