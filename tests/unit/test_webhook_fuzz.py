"""hypothesis against every provider's webhook parser: whatever the body, headers, path and
sender, `parse` answers reports or WebhookRejected (401), never another exception (a 500).
Both halves are fuzzed: bodies with wrong or no signatures (the verification), and bodies
signed with the right secret (the reading after it), of any shape.

Headers are text as Starlette gives it (bytes read as Latin-1); bodies are bytes, mostly
JSON shaped like the provider's with values of any type. test_provider_webhooks_hostile.py
keeps the hand-picked hostile bodies (deep nesting, huge exponents) these do not repeat.
"""

from __future__ import annotations

import json
import time
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from watcher.config import (
    AcidPanelSettings,
    BankTransferSettings,
    KazawalletSettings,
    StripeSettings,
)
from watcher.devchain.stripe import sign
from watcher.payments.outcomes import OUTCOMES, Report
from watcher.providers.acidpanel import AcidPanelProvider, callback_hash
from watcher.providers.banktransfer import BankTransferProvider
from watcher.providers.base import Inbound, Provider, WebhookRejected
from watcher.providers.kazawallet import KazawalletProvider, webhook_secret
from watcher.providers.sandbox import SandboxProvider
from watcher.providers.stripe import StripeProvider

NOW_MS = int(time.time() * 1000)
STAMP = str(NOW_MS // 1000)
TOKEN = "bt_9f3c1d2e7a6b5c4d3e2f1a0b"
STRIPE_SECRET = "whsec_fuzz"
ACID = AcidPanelSettings(api_key="ak", secret_key="sk", credential_key="c")
KAZA = KazawalletSettings(api_key="kk", api_secret="ks")

STRIPE = StripeProvider(StripeSettings(secret_key="sk_live_x", webhook_secret=STRIPE_SECRET), "")
ACIDPANEL = AcidPanelProvider(ACID)
KAZAWALLET = KazawalletProvider(KAZA)
BANK = BankTransferProvider(BankTransferSettings(webhook_token=TOKEN, allowed_ips=["10.0.0.0/8"]))
SANDBOX = SandboxProvider("http://127.0.0.1:1")
FUZZ = settings(
    max_examples=300,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# Header values as Starlette hands them over: any byte, read as Latin-1.
latin1 = st.text(st.characters(max_codepoint=255), max_size=80)
# Strings a provider's fields could hold: any code point, lone surrogates included (JSON's
# "\ud800" escapes decode to them).
texts = st.one_of(
    st.text(max_size=12),
    st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=3),
    st.sampled_from(["", "txn_1", "completed", "successful", "fulfilled", "paid", "0", "\x00"]),
)
numbers = st.one_of(
    st.integers(),
    st.decimals(allow_nan=False, allow_infinity=False, places=None),
    st.sampled_from([Decimal("1e999999"), Decimal("-0"), Decimal("1E-50"), 10**40]),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, texts)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(texts, inner, max_size=3)),
    max_leaves=4,
)
KEYS = [
    # Stripe
    "id", "type", "livemode", "data", "object", "metadata", "transactionId", "amount_total",
    "currency", "payment_intent", "payment_status", "status", "refunded",
    # AcidPanel
    "tracking_code", "amount", "order_id", "error_code", "error_message",
    # Kazawallet
    "secret", "ref",
    # the bank service
    "processId", "statusReason",
]  # fmt: skip


def objects(depth: int = 1) -> st.SearchStrategy[dict[str, Any]]:
    """JSON objects with the providers' field names (nested as Stripe nests them)."""
    inner = objects(depth - 1) if depth > 0 else values
    return st.dictionaries(
        st.one_of(st.sampled_from(KEYS), texts), st.one_of(scalars, inner), max_size=5
    )


def encode(payload: Any) -> bytes:
    """JSON as a sender writes it: Decimals as numbers, lone surrogates as \\u escapes."""
    return json.dumps(payload, default=str, ensure_ascii=True).encode()


def form(fields: dict[str, Any]) -> bytes:
    """A form body as a sender writes it (text it cannot encode replaced)."""
    return urlencode({k: str(v) for k, v in fields.items()}, errors="replace").encode()


bodies = st.one_of(
    objects().map(encode),
    values.map(encode),
    st.binary(max_size=200),
    objects().map(form),
)


def check(provider: Provider, inbound: Inbound) -> None:
    try:
        reports = provider.parse(inbound)
    except WebhookRejected:
        return
    assert isinstance(reports, list) and reports
    for report in reports:
        _storable(report)


def _storable(report: Report) -> None:
    """Fields a text column takes: str, and valid Unicode (no lone surrogate)."""
    assert isinstance(report.key, str) and report.key
    assert isinstance(report.type, str) and report.type
    assert report.outcome is None or report.outcome in OUTCOMES
    texts = (report.transaction_id, report.reference, report.payment_ref, report.reason)
    for text in (report.key, report.type, *texts, report.paid_currency):
        assert text is None or (isinstance(text, str) and text.encode("utf-8"))
    paid = report.paid_amount
    assert paid is None or (isinstance(paid, Decimal) and paid.is_finite() and paid >= 0)


def inbound(body: bytes, headers: dict[str, str], path: str = "", ip: str | None = None) -> Inbound:
    return Inbound(body, headers, path, ip, NOW_MS)


header_maps = st.dictionaries(
    st.sampled_from(["stripe-signature", "x-hash", "x-timestamp", "content-type"]), latin1
)


@FUZZ
@given(body=bodies, headers=header_maps, path=latin1, ip=st.one_of(st.none(), latin1))
def test_unverified_webhooks_are_refused_or_read(
    body: bytes, headers: dict[str, str], path: str, ip: str | None
) -> None:
    for provider in (STRIPE, ACIDPANEL, KAZAWALLET, BANK, SANDBOX):
        check(provider, inbound(body, headers, path, ip))


@FUZZ
@given(
    body=bodies,
    stamp=st.one_of(st.just(int(STAMP)), st.integers(-(10**20), 10**20)),
    signatures=st.lists(latin1, max_size=3),
)
def test_stripe_signature_headers_of_any_shape(
    body: bytes, stamp: int, signatures: list[str]
) -> None:
    header = ",".join([f"t={stamp}", *(f"v1={s}" for s in signatures)])
    check(STRIPE, inbound(body, {"stripe-signature": header}))


@FUZZ
@given(event=st.one_of(objects(2), values))
def test_signed_stripe_events_of_any_shape(event: Any) -> None:
    body = encode(event)
    check(STRIPE, inbound(body, {"stripe-signature": sign(body, STRIPE_SECRET, int(STAMP))}))


@FUZZ
@given(payload=objects(), tracking=texts, status=texts, stamp=st.one_of(st.just(STAMP), latin1))
def test_signed_acidpanel_callbacks_of_any_shape(
    payload: dict[str, Any], tracking: str, status: str, stamp: str
) -> None:
    payload = {**payload, "tracking_code": tracking, "status": status}
    try:
        signature = callback_hash("ak", "sk", tracking, status, stamp)
    except UnicodeEncodeError:  # a lone surrogate: no sender could have hashed it
        signature = "0" * 64
    headers = {"x-hash": signature, "x-timestamp": stamp}
    check(ACIDPANEL, inbound(encode(payload), headers))


@FUZZ
@given(payload=objects(), order_id=texts, amount=st.one_of(texts, numbers), as_form=st.booleans())
def test_signed_kazawallet_webhooks_of_any_shape(
    payload: dict[str, Any], order_id: str, amount: Any, as_form: bool
) -> None:
    payload = {**payload, "order_id": order_id, "amount": amount}
    try:
        payload["secret"] = webhook_secret(str(amount), order_id, "kk", "ks")
    except UnicodeEncodeError:
        payload["secret"] = "x"
    if as_form:
        body, headers = form(payload), {"content-type": "application/x-www-form-urlencoded"}
    else:
        body, headers = encode(payload), {}
    check(KAZAWALLET, inbound(body, headers))


@FUZZ
@given(body=bodies, ip=st.sampled_from(["10.1.2.3", "::ffff:10.0.0.1", "192.168.0.1", "x"]))
def test_bank_callbacks_with_the_right_token_of_any_shape(body: bytes, ip: str) -> None:
    check(BANK, inbound(body, {}, TOKEN, ip))
