"""JSON responses with exact decimals, and the merchant-facing shapes of a payment."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from fastapi.responses import JSONResponse

from watcher import jsonio
from watcher.clock import iso
from watcher.db.models import Payment
from watcher.money import from_micro, json_number
from watcher.payments.events import snapshot


class DecimalJSONResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return jsonio.dumps(content).encode()


def created_body(payment: Payment, public_url: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "success": True,
        "transactionId": payment.id,
        "provider": payment.provider,
    }
    if payment.provider == "crypto":
        body["paymentUrl"] = f"{public_url}/pay/{payment.id}"
        body["data"] = {
            "walletAddress": payment.address,
            "amount": json_number(from_micro(payment.amount_micro or 0)),
            "currency": "USDT",
            "network": "TRC20",
            "rate": json_number(_rate(payment)),
            "expiresAt": iso(payment.expires_ms),
        }
    else:
        body["redirectUrl"] = payment.redirect_url
    return body


def transaction_body(payment: Payment, txids: list[str]) -> dict[str, Any]:
    snap = snapshot(payment, txids)
    tx: dict[str, Any] = {"id": snap.pop("transactionId")}
    for key in (
        "externalRef",
        "amount",
        "currency",
        "status",
        "provider",
        "createdAt",
        "expiresAt",
        "late",
    ):
        tx[key] = snap[key]
    if "crypto" in snap:
        crypto = snap["crypto"]
        tx["crypto"] = {
            "address": crypto["address"],
            "network": "TRC20",
            "amountUsdt": crypto["amountUsdt"],
            "receivedUsdt": crypto["receivedUsdt"],
            "rate": crypto["rate"],
            "txids": crypto["txids"],
        }
        if "lateUsdt" in crypto:
            tx["crypto"]["lateUsdt"] = crypto["lateUsdt"]
    return {"success": True, "transaction": tx}


def _rate(payment: Payment) -> Decimal:
    return Decimal(payment.rate or "0")
