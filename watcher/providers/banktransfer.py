"""Bank transfers reported by callback (seed 002): a bank-transfer service watches the
operator's account and POSTs each deposit it sees, quoting the reference the payer wrote.

- start: nothing to call. The payer is sent to our /pay/{id}, which shows the operator's
  account (`bank_name`, `account_name`, `iban`) and the reference to quote: the
  transactionId, which the service sends back as `processId`.
- parse: the seed gives no hash formula, so a callback is believed when it comes to
  /providers/banktransfer/webhook/{webhook_token} (compared in constant time) from one of
  `allowed_ips` (none listed: any address). Deposit callbacks: successful → paid (`amount`,
  "the amount you will consider", is the paid amount), unsuccessful → failed (statusReason
  kept). A successful deposit without a readable amount above zero is malformed: refused as
  a body that is not JSON is (WebhookRejected), nothing kept; the seed says nothing of what
  the receiver answers, and the service may send it again, corrected. The seed warns the
  same transaction may come again with another status: each (transactionId, status) is one
  report, so a repeat changes nothing and a change is applied and reported. Withdraw
  callbacks are answered and kept: withdrawals are not part of this daemon. The seed's
  `hash` stays in the stored body.
- fetch: the service has no status call; an unreported payment expires after its deadline.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Mapping
from typing import Any, Final

from watcher.config import BankTransferSettings
from watcher.payments.outcomes import FAILED_OUTCOME, PAID, Report
from watcher.providers.base import Inbound, Order, Started, Tracked, WebhookRejected
from watcher.providers.wire import amount_field, clean, json_object, text_field

NAME: Final = "banktransfer"

# A deposit callback's status -> our outcome.
DEPOSIT_STATUSES: Final[dict[str, str]] = {"successful": PAID, "unsuccessful": FAILED_OUTCOME}


class BankTransferProvider:
    name = NAME
    currency = "TRY"

    def __init__(self, settings: BankTransferSettings) -> None:
        self._token = settings.webhook_token
        self._allowed = [ipaddress.ip_network(a, strict=False) for a in settings.allowed_ips]

    async def start(self, order: Order) -> Started:
        # The reference the payer quotes is ours; the page with the account is ours too.
        return Started(reference=order.transaction_id, redirect_url=None)

    def parse(self, inbound: Inbound) -> list[Report]:
        if not inbound.path or not hmac.compare_digest(inbound.path.encode(), self._token.encode()):
            raise WebhookRejected("the webhook token in the path is wrong")
        if not self._sender_allowed(inbound.client_ip):
            raise WebhookRejected("the sender's address is not in allowed_ips")
        return [_report(json_object(inbound.body))]

    async def fetch(self, tracked: Tracked) -> Report | None:
        return None

    async def cancel(self, reference: str) -> None:
        return None

    async def check(self) -> str:
        senders = ", ".join(str(n) for n in self._allowed) or "any address"
        return f"no outbound calls; callbacks accepted from {senders}"

    async def close(self) -> None:
        return None

    def _sender_allowed(self, client_ip: str | None) -> bool:
        if not self._allowed:
            return True
        try:
            address = ipaddress.ip_address(client_ip or "")
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self._allowed)


def _report(payload: Mapping[str, Any]) -> Report:
    theirs = text_field(payload, "transactionId")
    ours = text_field(payload, "processId")
    status = text_field(payload, "status") or ""
    kind = text_field(payload, "type") or "deposit"
    # One report per (their transaction, status); without their id, per our processId.
    key = f"{theirs}:{status}" if theirs else f"process:{ours or ''}:{status}"
    if kind != "deposit":  # a withdraw callback: not ours to act on
        return Report(key=f"{kind}:{key}", type=f"{kind}.{status}"[:64], outcome=None)
    outcome = DEPOSIT_STATUSES.get(status)
    paid = amount_field(payload.get("amount")) if outcome == PAID else None
    if outcome == PAID and (paid is None or paid <= 0):
        # What arrived is what completes the payment: without it, nothing to complete with.
        raise WebhookRejected("a successful deposit without a readable amount above zero")
    reason = text_field(payload, "statusReason")
    return Report(
        key=key,
        type=f"deposit.{status}"[:64],
        outcome=outcome,
        transaction_id=ours,
        payment_ref=theirs,
        paid_amount=paid,
        reason=(clean(reason) if reason else "unsuccessful") if outcome == FAILED_OUTCOME else None,
    )
