"""Inbound provider webhooks: POST /providers/{name}/webhook[/{token}].

The raw body is verified first, by the adapter (a signature, or a path token and the
sender's address); a webhook that fails gets 401 and changes nothing, and the log says why
without the body or its headers (they carry signatures and customer data). A verified one is
stored and applied in one transaction before it is answered 200: a provider that sends once
(Kazawallet) loses nothing, and one that repeats changes nothing the second time. A verified
webhook about a payment nobody here knows is answered 200 too (the provider would retry it
for days otherwise) and kept for ops.
"""

from __future__ import annotations

from typing import Annotated

import structlog
from fastapi import APIRouter, Path, Request

from watcher.api import schema
from watcher.api.auth import ServicesDep
from watcher.api.responses import DecimalJSONResponse
from watcher.errors import NotFound, Unauthorized
from watcher.providers.base import Inbound, WebhookRejected

router = APIRouter(
    prefix="/providers", default_response_class=DecimalJSONResponse, tags=["providers"]
)
_NAME = Path(description="The provider", json_schema_extra={"enum": list(schema.WEBHOOK_PROVIDERS)})
log = structlog.get_logger("watcher.api.providers")


@router.post(
    "/{name}/webhook",
    operation_id="providerWebhook",
    summary="A provider's webhook (Stripe, AcidPanel, Kazawallet)",
    description=(
        "Verified before anything in it is read: one that does not verify is 401 and changes "
        "nothing. A verified one is stored and applied before it is answered."
    ),
    **schema.WEBHOOK,
)
async def provider_webhook(
    name: Annotated[str, _NAME], request: Request, services: ServicesDep
) -> DecimalJSONResponse:
    return await _receive(name, "", request, services)


@router.post(
    "/{name}/webhook/{token}",
    operation_id="providerWebhookWithToken",
    summary="A provider's webhook with a secret token in its path (the bank service)",
    **schema.WEBHOOK,
)
async def provider_webhook_token(
    name: Annotated[str, _NAME],
    token: Annotated[str, Path(description="[providers.banktransfer] webhook_token")],
    request: Request,
    services: ServicesDep,
) -> DecimalJSONResponse:
    return await _receive(name, token, request, services)


async def _receive(
    name: str, path: str, request: Request, services: ServicesDep
) -> DecimalJSONResponse:
    adapter = services.providers.get(name)
    if adapter is None or name == "sandbox":
        raise NotFound("no such provider on this server")
    body = await request.body()
    inbound = Inbound(
        body=body,
        headers={k.lower(): v for k, v in request.headers.items()},
        path=path,
        client_ip=request.client.host if request.client else None,
        received_ms=services.clock(),
    )
    try:
        reports = adapter.parse(inbound)
    except WebhookRejected as exc:
        log.warning(
            "provider.webhook_rejected",
            provider=name,
            reason=str(exc),
            client_ip=inbound.client_ip,
            body_bytes=len(body),
        )
        raise Unauthorized("the webhook's signature does not verify") from None
    applied = await services.payments.report(name, reports, body)
    for a in applied:
        log.info(
            "provider.webhook",
            provider=name,
            report_type=a.report.type,
            key=a.report.key,
            result=a.result,
            payment_id=a.payment_id,
        )
    return DecimalJSONResponse({"received": True})
