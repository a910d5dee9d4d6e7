"""JSON responses with exact decimals, and the create and status answers."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

from watcher import jsonio
from watcher.db.models import Payment
from watcher.payments.methods import Block, PaymentMethod
from watcher.payments.view import payment_json


class DecimalJSONResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return jsonio.dumps(content).encode()


def created_body(payment: Payment, method: PaymentMethod, public_url: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "success": True,
        "transactionId": payment.id,
        "provider": payment.provider,
    }
    body.update(method.created(payment, public_url))
    return body


def transaction_body(payment: Payment, block: Block | None) -> dict[str, Any]:
    """The status answer: the payment's JSON, its id as `id` (seed 000's field name)."""
    data = payment_json(payment, block)
    return {"success": True, "transaction": {"id": data.pop("transactionId"), **data}}
