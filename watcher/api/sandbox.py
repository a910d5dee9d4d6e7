"""The sandbox payment page, /sandbox/pay/{id}: where test-mode card, bank and wallet payments
are "paid". It plays the provider's payment page and its webhook in one: what the payer does
here becomes a report (watcher.providers.sandbox) applied like any provider's, with the
events and test-mode callbacks that follow.

Only payments the sandbox took (test-mode ones) are served; a live payment is 404 here.
Each POST answers with a redirect to the page (post/redirect/get), which then shows the
outcome.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlmodel import col

from watcher.api import i18n
from watcher.api.provider_page import ProviderView, provider_view, render
from watcher.db.models import PaymentReport
from watcher.payments.outcomes import Report
from watcher.payments.states import PENDING
from watcher.providers import sandbox
from watcher.services import Services

router = APIRouter(prefix="/sandbox/pay", include_in_schema=False)

MAX_FORM_BYTES = 4096


async def _view(request: Request, payment_id: str) -> ProviderView | None:
    view = await provider_view(request.app.state.services, payment_id)
    return view if view is not None and view.provider == sandbox.NAME else None


async def _form(request: Request) -> dict[str, str]:
    raw = (await request.body())[:MAX_FORM_BYTES].decode("utf-8", "replace")
    return {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}


def _page(request: Request, view: ProviderView | None, **extra: object) -> HTMLResponse:
    return render(
        request, view, status_code=200 if view else 404, forms=True, sandbox_page=True, **extra
    )


def _back(request: Request, payment_id: str) -> RedirectResponse:
    """Back to the page, in the language the payer chose there."""
    lang = request.query_params.get("lang")
    query = f"?lang={lang}" if lang in i18n.LANGUAGES else ""
    return RedirectResponse(f"/sandbox/pay/{payment_id}{query}", status_code=303)


async def _apply(request: Request, report: Report) -> None:
    services: Services = request.app.state.services
    await services.payments.report(sandbox.NAME, [report])


async def _asked(request: Request, payment_id: str) -> bool:
    """Whether the 3-D Secure card was entered for this payment (the step exists)."""
    services: Services = request.app.state.services
    key = sandbox.three_d_secure_key(payment_id)
    async with services.sessions() as session:
        found = await session.scalar(
            select(col(PaymentReport.id)).where(
                col(PaymentReport.source) == sandbox.NAME, col(PaymentReport.key) == key
            )
        )
    return found is not None


@router.get("/{payment_id}", response_class=HTMLResponse)
async def sandbox_page(payment_id: str, request: Request) -> HTMLResponse:
    return _page(request, await _view(request, payment_id))


@router.post("/{payment_id}")
async def pay_by_card(payment_id: str, request: Request) -> Response:
    view = await _view(request, payment_id)
    if view is None or view.status != PENDING or view.method != "card":
        return _page(request, view) if view is None else _back(request, payment_id)
    form = await _form(request)
    number, expiry = form.get("number", ""), form.get("expiry", "")
    services: Services = request.app.state.services
    try:
        card = sandbox.check_card(number, expiry, form.get("cvc", ""), services.clock())
    except sandbox.CardRefused as exc:
        entered = {"number": number[:32], "expiry": expiry[:8]}
        return _page(request, view, error=exc.code, form=entered)
    if card.outcome == sandbox.THREE_D_SECURE:
        await _apply(request, sandbox.three_d_secure_asked(payment_id))
        return _page(request, view, step="3ds")
    await _apply(request, sandbox.card_report(payment_id, card, view.amount_try))
    return _back(request, payment_id)


@router.post("/{payment_id}/3ds")
async def three_d_secure(payment_id: str, request: Request) -> Response:
    view = await _view(request, payment_id)
    if view is None:
        return _page(request, None)
    if view.status == PENDING and view.method == "card" and await _asked(request, payment_id):
        approved = (await _form(request)).get("decision") == "approve"
        card = sandbox.TEST_CARDS["4000002500003155"]
        await _apply(
            request, sandbox.card_report(payment_id, card, view.amount_try, approved=approved)
        )
    return _back(request, payment_id)


@router.post("/{payment_id}/action")
async def bank_or_wallet(payment_id: str, request: Request) -> Response:
    view = await _view(request, payment_id)
    if view is None:
        return _page(request, None)
    action = (await _form(request)).get("action", "")
    if view.status == PENDING and view.method != "card" and action in sandbox.ACTIONS:
        await _apply(request, sandbox.action_report(payment_id, action, view.amount_try))
    return _back(request, payment_id)
