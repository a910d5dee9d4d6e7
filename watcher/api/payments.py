"""The merchant payment API: create, status, cancel (docs/merchant-api.md#endpoints)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from watcher import jsonio
from watcher.api import schema
from watcher.api.auth import CurrentMerchant, ServicesDep
from watcher.api.responses import DecimalJSONResponse, created_body, transaction_body
from watcher.db.models import Payment
from watcher.errors import InvalidRequest
from watcher.payments.request import parse_create
from watcher.services import Services

router = APIRouter(
    prefix="/api/payment", default_response_class=DecimalJSONResponse, tags=["payments"]
)


async def _json_body(request: Request) -> Any:
    ctype = request.headers.get("content-type", "application/json").split(";")[0].strip()
    if ctype not in ("application/json", ""):
        raise InvalidRequest("Content-Type must be application/json")
    raw = await request.body()
    if not raw.strip():
        raise InvalidRequest("the request body is empty")
    try:
        return jsonio.loads(raw)
    except RecursionError:
        # Nesting deeper than the interpreter's stack; caught here, before a traceback a
        # thousand frames long is logged for it.
        raise InvalidRequest("the request body is nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"the request body is not valid JSON: {exc}") from exc


@router.post(
    "/create",
    operation_id="createPayment",
    summary="Create a payment",
    description=(
        "Checked in the order you can act on: the key, the body's shape, the provider, then "
        "the fields. The same externalRef with the same amount answers the existing payment; "
        "with another amount it is 409 DUPLICATE_REF. On 502 nothing is kept: retry."
    ),
    **schema.CREATE,
)
async def create_payment(
    request: Request, merchant: CurrentMerchant, services: ServicesDep
) -> DecimalJSONResponse:
    settings = services.settings
    req = parse_create(
        await _json_body(request),
        settings.limits,
        allow_private_urls=settings.callbacks.allow_private_urls,
        enabled=services.payments.kinds,
    )
    result = await services.payments.create(merchant, req)
    public_url = services.settings.public_url()
    return DecimalJSONResponse(created_body(result.payment, result.method, public_url))


async def _status(services: Services, payment: Payment) -> DecimalJSONResponse:
    async with services.sessions() as session:
        block = await services.payments.block(session, payment)
    return DecimalJSONResponse(transaction_body(payment, block))


@router.get(
    "/status",
    operation_id="getPayment",
    summary="One payment, by transactionId or externalRef",
    description="Give one of the two (transactionId wins when both are given).",
    **schema.STATUS,
)
async def payment_status(
    merchant: CurrentMerchant,
    services: ServicesDep,
    transactionId: Annotated[str | None, Query(description="Ours: txn_…")] = None,
    externalRef: Annotated[str | None, Query(description="Yours, as sent at create")] = None,
) -> DecimalJSONResponse:
    payment, block = await services.payments.get(merchant, txn_id=transactionId, ref=externalRef)
    return DecimalJSONResponse(transaction_body(payment, block))


@router.post(
    "/{transaction_id}/cancel",
    operation_id="cancelPayment",
    summary="Cancel a pending payment that has received nothing",
    description=(
        "A card payment's page at the provider is closed first; if the provider cannot be "
        "reached it is 502 and the payment stays pending. Anything but a pending payment "
        "without funds is 409 INVALID_STATE."
    ),
    **schema.CANCEL,
)
async def cancel_payment(
    transaction_id: str, merchant: CurrentMerchant, services: ServicesDep
) -> DecimalJSONResponse:
    payment = await services.payments.cancel(merchant, transaction_id)
    return await _status(services, payment)
