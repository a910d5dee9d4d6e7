"""Signatures and payloads, against vectors computed independently with `openssl dgst -hmac`."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from watcher.callbacks.payload import callback_payload, encode, event_view
from watcher.callbacks.signing import matches, sign, sign_body, signature_string
from watcher.db.models import PaymentEvent

TS = "2025-01-15T10:30:00.000Z"

# printf 'txn_839210:ORDER_123:completed:<amount>:<TS>' | openssl dgst -sha256 -hmac whsec_test
OPENSSL = {
    "1000": "acd935253420d5b824858f8a899b26c6ce7af58617c386b908216914aea4411b",
    "281.6": "4409c65fa66839145eaa42c4fbf9bb7007ab2ed443c76e0fa9beecd9aae101b0",
    "0.5": "dc55043d3e0084d02c73b9c01d4a5bcdeebb1b49a7e49445d2261872f097b3b3",
    "500000": "dc22975a77cdb3686faced6a7fa9a92174fb91f7297fb59afe9bb36b0a83130c",
}


@pytest.mark.parametrize(
    ("amount", "canonical"),
    [
        (Decimal("1000.00"), "1000"),
        (Decimal("281.60"), "281.6"),
        (Decimal("0.5"), "0.5"),
        (Decimal("500000"), "500000"),
        (500000, "500000"),
    ],
)
def test_amount_is_signed_as_javascript_prints_the_json_number(
    amount: Decimal | int, canonical: str
) -> None:
    text = signature_string("txn_839210", "ORDER_123", "completed", amount, TS)
    assert text == f"txn_839210:ORDER_123:completed:{canonical}:{TS}"
    assert (
        sign("whsec_test", "txn_839210", "ORDER_123", "completed", amount, TS)
        == (OPENSSL[canonical])
    )


def test_secret_and_fields_are_utf8() -> None:
    got = sign("gizli-şifre", "txn_1", "SİPARİŞ-Ğ", "completed", Decimal("281.60"), TS)
    assert got == "0ccc69a63ef7f6bee14df063669f5fc4ae12f274922aeb8d5c19135aab686e6f"


def test_body_signature_covers_timestamp_dot_raw_body() -> None:
    assert sign_body("whsec_test", TS, b'{"a":1}') == (
        "ec4ae401bc19c187642bb9e54088374886c760466262c8c802e073c7188c8899"
    )


def test_matches_is_exact_but_tolerates_uppercase_hex() -> None:
    good = OPENSSL["1000"]
    assert matches(good, good) and matches(good, good.upper())
    assert not matches(good, good[:-1] + "0") and not matches(good, "") and not matches(good, "ş")


def _event(data: dict[str, object]) -> PaymentEvent:
    return PaymentEvent(
        id=7,
        event_id="evt_1",
        payment_id="txn_1",
        merchant_id=1,
        type="payment.completed",
        sequence=3,
        status="completed",
        created_ms=1_736_937_000_000,
        data_json=json.dumps(data, ensure_ascii=False),
    )


SNAPSHOT = {  # as record_event stores it: Decimals as strings
    "transactionId": "txn_1",
    "externalRef": "ORD-Ş",
    "status": "completed",
    "amount": "281.6",
    "currency": "TRY",
    "provider": "crypto",
    "fullName": "Çağrı Öztürk",
    "late": False,
    "metadata": {"userId": "11420076"},
    "crypto": {
        "network": "TRC20",
        "address": "TXj9",
        "amountUsdt": "7.93",
        "receivedUsdt": "7.930000",
        "rate": "35.5",
        "txids": ["ab" * 32],
    },
}


def test_payload_carries_exact_json_numbers_and_a_signature_over_its_own_values() -> None:
    payload = callback_payload(_event(SNAPSHOT), "whsec_test", TS)
    body = encode(payload).decode()
    assert '"amount":281.6,' in body and '"receivedUsdt":7.93,' in body and '"rate":35.5' in body
    assert "Çağrı Öztürk" in body
    parsed = json.loads(body)
    assert (parsed["eventId"], parsed["sequence"], parsed["timestamp"]) == ("evt_1", 3, TS)
    expected = sign("whsec_test", "txn_1", "ORD-Ş", "completed", Decimal("281.6"), TS)
    assert parsed["signature"] == expected
    assert parsed["occurredAt"] == "2025-01-15T10:30:00.000Z"


def test_event_view_has_no_signature_and_card_payments_have_no_crypto_block() -> None:
    card = {k: v for k, v in SNAPSHOT.items() if k != "crypto"} | {"provider": "card"}
    view = event_view(_event(card))
    assert "signature" not in view and "timestamp" not in view and "crypto" not in view
    assert view["amount"] == Decimal("281.6")
