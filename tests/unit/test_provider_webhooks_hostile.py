"""What arrives at a provider webhook URL is anyone's: whatever the body and headers, a parser
answers with reports or WebhookRejected (401), never another exception (a 500), and never
spends memory or time on a number's size."""

from __future__ import annotations

import json
import time

import pytest

from watcher.config import AcidPanelSettings, BankTransferSettings, KazawalletSettings
from watcher.providers.acidpanel import AcidPanelProvider, callback_hash
from watcher.providers.banktransfer import BankTransferProvider
from watcher.providers.base import Inbound, Provider, WebhookRejected
from watcher.providers.kazawallet import KazawalletProvider, webhook_secret

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


def test_a_signed_acidpanel_callback_with_an_absurd_amount_reports_no_amount() -> None:
    acid = AcidPanelProvider(AcidPanelSettings(api_key="ak", secret_key="sk", credential_key="c"))
    signature = callback_hash("ak", "sk", "MAN-1", "completed", STAMP)
    for amount in ("1e999999999", "-5", "NaN", "1e-999999999"):
        body = json.dumps({"tracking_code": "MAN-1", "status": "completed", "amount": amount})
        headers = {"x-hash": signature, "x-timestamp": STAMP}
        [report] = acid.parse(Inbound(body.encode(), headers, "", None, NOW_MS))
        assert report.paid_amount is None, amount


def test_a_kazawallet_secret_over_an_absurd_amount_is_refused() -> None:
    kaza = KazawalletProvider(KazawalletSettings(api_key="kk", api_secret="ks"))
    body = {"order_id": "pl_1", "amount": "1e999999999", "ref": "txn_1", "status": "fulfilled"}
    body["secret"] = webhook_secret(body["amount"], "pl_1", "kk", "ks")
    with pytest.raises(WebhookRejected):
        kaza.parse(Inbound(json.dumps(body).encode(), {}, "", None, NOW_MS))
