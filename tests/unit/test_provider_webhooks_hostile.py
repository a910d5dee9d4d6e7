"""What arrives at a provider webhook URL is anyone's: whatever the body and headers, a parser
answers with reports or WebhookRejected (401), never another exception (a 500), and never
spends memory or time on a number's size."""

from __future__ import annotations

import json
import time

import pytest

from watcher.config import (
    AcidPanelSettings,
    BankTransferSettings,
    KazawalletSettings,
    StripeSettings,
)
from watcher.devchain.stripe import sign
from watcher.providers.acidpanel import AcidPanelProvider, callback_hash
from watcher.providers.banktransfer import BankTransferProvider
from watcher.providers.base import Inbound, Provider, WebhookRejected
from watcher.providers.kazawallet import KazawalletProvider, webhook_secret
from watcher.providers.stripe import StripeProvider

TOKEN = "bt_9f3c1d2e7a6b5c4d3e2f1a0b"
NOW_MS = int(time.time() * 1000)
STAMP = str(NOW_MS // 1000)

HOSTILE_BODIES = [
    b"[" * 100_000,  # deeper than the JSON parser recurses
    b'{"a": ' * 50_000 + b"1" + b"}" * 50_000,
    b'{"amount": 1e999999999, "order_id": "pl_1", "secret": "x", "processId": "txn_1"}',
    b'{"amount": 1e-999999999, "order_id": "pl_1", "secret": "x"}',
    b'{"amount": "1e999999999", "order_id": "pl_1", "secret": "x"}',
    b"\xff\xfe\x00",
    b'{"a": 1, "a": 2}',
    b"null",
    b'"text"',
    b"",
    b"amount=1e999999999&order_id=pl_1&secret=x",
]


def _providers() -> list[tuple[Provider, dict[str, str], str]]:
    acid = AcidPanelProvider(AcidPanelSettings(api_key="ak", secret_key="sk", credential_key="c"))
    kaza = KazawalletProvider(KazawalletSettings(api_key="kk", api_secret="ks"))
    bank = BankTransferProvider(BankTransferSettings(webhook_token=TOKEN))
    return [
        (acid, {"x-hash": "00", "x-timestamp": STAMP}, ""),
        (acid, {"x-hash": "00", "x-timestamp": "²"}, ""),  # a digit int() refuses
        (acid, {"x-hash": "00", "x-timestamp": "9" * 5000}, ""),
        (kaza, {}, ""),
        (kaza, {"content-type": "application/x-www-form-urlencoded"}, ""),
        (bank, {}, TOKEN),
    ]


@pytest.mark.parametrize("body", HOSTILE_BODIES, ids=lambda b: repr(b[:24]))
def test_hostile_bodies_are_refused_or_read_never_crash(body: bytes) -> None:
    for provider, headers, path in _providers():
        inbound = Inbound(body, headers, path, "127.0.0.1", NOW_MS)
        started = time.monotonic()
        try:
            provider.parse(inbound)
        except WebhookRejected:
            pass
        assert time.monotonic() - started < 1, provider.name


def test_a_signed_acidpanel_callback_with_an_absurd_amount_is_refused() -> None:
    # A paid callback's amount is what completes the payment: unreadable, it is refused.
    acid = AcidPanelProvider(AcidPanelSettings(api_key="ak", secret_key="sk", credential_key="c"))
    signature = callback_hash("ak", "sk", "MAN-1", "completed", STAMP)
    for amount in ("1e999999999", "-5", "NaN", "1e-999999999"):
        body = json.dumps({"tracking_code": "MAN-1", "status": "completed", "amount": amount})
        headers = {"x-hash": signature, "x-timestamp": STAMP}
        with pytest.raises(WebhookRejected):
            acid.parse(Inbound(body.encode(), headers, "", None, NOW_MS))


def test_a_kazawallet_secret_over_an_absurd_amount_is_refused() -> None:
    kaza = KazawalletProvider(KazawalletSettings(api_key="kk", api_secret="ks"))
    body = {"order_id": "pl_1", "amount": "1e999999999", "ref": "txn_1", "status": "fulfilled"}
    body["secret"] = webhook_secret(body["amount"], "pl_1", "kk", "ks")
    with pytest.raises(WebhookRejected):
        kaza.parse(Inbound(json.dumps(body).encode(), {}, "", None, NOW_MS))


def test_a_stripe_signature_header_with_non_ascii_characters_is_refused() -> None:
    # Starlette reads header bytes as Latin-1; the stripe package compares signatures with
    # hmac.compare_digest, which raises TypeError for non-ASCII str (a 500 for anyone).
    stripe = StripeProvider(StripeSettings(secret_key="sk_live_x", webhook_secret="whsec_x"), "")
    for header in (f"t={STAMP},v1=\xe9", f"t={STAMP},v1=00,v1=\xff\xfe", "t=\xb2,v1=00"):
        with pytest.raises(WebhookRejected):
            stripe.parse(Inbound(b"{}", {"stripe-signature": header}, "", None, NOW_MS))


def test_a_signed_stripe_body_nested_deeper_than_the_parser_goes_is_refused() -> None:
    stripe = StripeProvider(StripeSettings(secret_key="sk_live_x", webhook_secret="whsec_x"), "")
    body = b"[" * 100_000
    headers = {"stripe-signature": sign(body, "whsec_x", int(STAMP))}
    with pytest.raises(WebhookRejected):
        stripe.parse(Inbound(body, headers, "", None, NOW_MS))


def test_webhook_fields_with_lone_surrogates_are_refused_not_hashed() -> None:
    # JSON's "\ud800" decodes to a lone surrogate, which str.encode() refuses: the hash of an
    # unsigned AcidPanel callback or Kazawallet webhook raised UnicodeEncodeError (a 500).
    acid = AcidPanelProvider(AcidPanelSettings(api_key="ak", secret_key="sk", credential_key="c"))
    kaza = KazawalletProvider(KazawalletSettings(api_key="kk", api_secret="ks"))
    bank = BankTransferProvider(BankTransferSettings(webhook_token=TOKEN))
    acid_headers = {"x-hash": "00", "x-timestamp": STAMP}
    cases: list[tuple[Provider, bytes, dict[str, str], str]] = [
        (acid, b'{"tracking_code": "\\ud800", "status": "completed"}', acid_headers, ""),
        (acid, b'{"tracking_code": "T1", "status": "\\udfff"}', acid_headers, ""),
        (kaza, b'{"order_id": "\\ud800", "amount": "10", "secret": "x"}', {}, ""),
        (kaza, b'{"order_id": "pl_1", "amount": "10", "secret": "\\ud800"}', {}, ""),
        (bank, b'{"processId": "\\ud800", "status": "successful"}', {}, TOKEN),
    ]
    for provider, body, headers, path in cases:
        with pytest.raises(WebhookRejected):
            provider.parse(Inbound(body, headers, path, "127.0.0.1", NOW_MS))
