"""The payment as merchants see it: one shape for the status API, events, callbacks and the CLI.

Shaped here once. An event stores this shape as it was when the event happened, so every
callback attempt and GET /api/events show the same facts whatever happens later; the status
API shows it as it is now. The payment method's block (`crypto`, or `provider` for card, bank
and wallet payments) comes from the method (watcher.payments.methods.Block).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from watcher import jsonio
from watcher.clock import iso
from watcher.db.models import Payment
from watcher.money import from_kurus, json_number
from watcher.payments.methods import Block


def payment_json(payment: Payment, block: Block | None) -> dict[str, Any]:
    """Amounts are Decimal (exact JSON numbers through watcher.jsonio)."""
    data: dict[str, Any] = {
        "transactionId": payment.id,
        "externalRef": payment.external_ref,
        "status": payment.status,
        "amount": json_number(from_kurus(payment.amount_kurus)),
        "currency": payment.currency,
        "fullName": payment.full_name,
        "livemode": not payment.sandbox,
        "method": payment.provider,
        "provider": payment.provider,
        "late": payment.late,
        "createdAt": iso(payment.created_ms),
        "expiresAt": iso(payment.expires_ms),
        "metadata": jsonio.loads(payment.metadata_json or "{}"),
    }
    if block is not None:
        data[block.key] = block.fields
    return data


def is_money(key: str) -> bool:
    return key in ("amount", "rate") or key.endswith(("Amount", "Usdt"))


def exact_numbers(fields: dict[str, Any]) -> dict[str, Any]:
    """A stored block with its money fields as JSON numbers (older events stored strings)."""
    return {
        key: json_number(Decimal(str(value))) if is_money(key) and value is not None else value
        for key, value in fields.items()
    }
