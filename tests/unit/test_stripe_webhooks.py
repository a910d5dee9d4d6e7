"""Stripe webhooks as the adapter reads them: signatures checked by the `stripe` package,
event types mapped through its table. Bodies and headers made the way Stripe makes them."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from watcher.config import StripeSettings
from watcher.devchain.stripe import FakeStripe, decode_form
from watcher.providers.base import Inbound, WebhookRejected
from watcher.providers.stripe import StripeProvider, session_expires_at

SECRET = "whsec_unit"


@pytest.fixture
def adapter() -> StripeProvider:
    settings = StripeSettings(secret_key="sk_test_unit", webhook_secret=SECRET)
    return StripeProvider(settings, "http://127.0.0.1:1")


def _inbound(body: bytes, headers: dict[str, str]) -> Inbound:
    lower = {k.lower(): v for k, v in headers.items()}
    return Inbound(body=body, headers=lower, path="", client_ip=None, received_ms=0)


def _session(**fields: object) -> dict[str, object]:
    session: dict[str, object] = {
        "id": "cs_test_1",
        "object": "checkout.session",
        "client_reference_id": "txn_1",
        "metadata": {"transactionId": "txn_1", "externalRef": "ORD-1"},  # as start() writes it
        "livemode": True,  # the adapter takes live payments only
        "amount_total": 123456,
        "currency": "try",
        "payment_intent": "pi_1",
        "payment_status": "paid",
        "status": "complete",
    }
    session.update(fields)
    return session


def test_a_completed_paid_session_reports_paid_with_the_amount(adapter: StripeProvider) -> None:
    fake = FakeStripe()
    event = fake.event("checkout.session.completed", _session())
    [report] = adapter.parse(_inbound(*fake.signed(event, SECRET)))
    assert (report.key, report.outcome, report.transaction_id) == (event["id"], "paid", "txn_1")
    assert (report.reference, report.payment_ref) == ("cs_test_1", "pi_1")
    assert report.paid_amount == Decimal("1234.56") and report.paid_currency == "TRY"


def test_client_reference_id_alone_names_no_payment(adapter: StripeProvider) -> None:
    """A payer can set it on any Payment Link of the account; only our metadata is ours."""
    fake = FakeStripe()
    event = fake.event("checkout.session.completed", _session(metadata={}))
    [report] = adapter.parse(_inbound(*fake.signed(event, SECRET)))
    assert report.transaction_id is None and report.reference == "cs_test_1"


@pytest.mark.parametrize(
    ("kind", "fields", "outcome"),
    [
        ("checkout.session.completed", {"payment_status": "unpaid"}, "processing"),
        ("checkout.session.async_payment_succeeded", {}, "paid"),
        ("checkout.session.async_payment_failed", {"payment_status": "unpaid"}, "failed"),
        ("checkout.session.expired", {"status": "expired", "payment_status": "unpaid"}, "expired"),
        ("customer.created", {}, None),
    ],
)
def test_event_types_map_as_the_table_says(
    adapter: StripeProvider, kind: str, fields: dict[str, object], outcome: str | None
) -> None:
    fake = FakeStripe()
    [report] = adapter.parse(_inbound(*fake.signed(fake.event(kind, _session(**fields)), SECRET)))
    assert report.outcome == outcome


def test_a_full_refund_refunds_and_a_partial_one_is_only_noted(adapter: StripeProvider) -> None:
    fake = FakeStripe()
    charge = {
        "id": "ch_1",
        "payment_intent": "pi_1",
        "refunded": True,
        "metadata": {},
        "livemode": True,
    }
    [full] = adapter.parse(_inbound(*fake.signed(fake.event("charge.refunded", charge), SECRET)))
    assert (full.outcome, full.reference, full.transaction_id) == ("refunded", "pi_1", None)
    partial = {**charge, "refunded": False, "metadata": {"transactionId": "txn_1"}}
    [part] = adapter.parse(_inbound(*fake.signed(fake.event("charge.refunded", partial), SECRET)))
    assert (part.outcome, part.transaction_id) == (None, "txn_1")


def test_bad_signatures_are_rejected(adapter: StripeProvider) -> None:
    fake = FakeStripe()
    event = fake.event("checkout.session.completed", _session())
    body, headers = fake.signed(event, SECRET)
    for bad_body, bad_headers in (
        (body.replace(b"123456", b"1"), headers),  # tampered
        (body, fake.signed(event, "whsec_other")[1]),  # another secret
        (body, fake.signed(event, SECRET, int(time.time()) - 301)[1]),  # stale
        (body, {}),  # unsigned
        (body, {"Stripe-Signature": "t=abc,v1=zz"}),  # garbage
        (b"\xff\xfe", headers),
    ):
        with pytest.raises(WebhookRejected):
            adapter.parse(_inbound(bad_body, bad_headers))


def test_a_signed_body_that_is_not_an_event_is_rejected(adapter: StripeProvider) -> None:
    fake = FakeStripe()
    with pytest.raises(WebhookRejected):
        adapter.parse(_inbound(*fake.signed({"no": "id"}, SECRET)))


def test_stripe_form_encoding_decodes_to_what_was_sent() -> None:
    body = (
        b"mode=payment&line_items[0][quantity]=1&line_items[0][price_data][currency]=try"
        b"&line_items[0][price_data][unit_amount]=100000&metadata[transactionId]=txn_1"
    )
    assert decode_form(body) == {
        "mode": "payment",
        "line_items": [
            {"quantity": "1", "price_data": {"currency": "try", "unit_amount": "100000"}}
        ],
        "metadata": {"transactionId": "txn_1"},
    }


def test_test_mode_events_pay_nothing(adapter: StripeProvider) -> None:
    """Every payment the adapter takes is live; Stripe's test mode takes no money."""
    fake = FakeStripe()
    event = fake.event("checkout.session.completed", _session(livemode=False))
    [report] = adapter.parse(_inbound(*fake.signed(event, SECRET)))
    assert (report.outcome, report.reason) == (None, "test_mode")


def test_a_deadline_inside_stripe_s_window_is_the_session_s_expiry() -> None:
    now = 1_800_000_000.0
    assert session_expires_at(int(now * 1000) + 3_600_000, now) == int(now) + 3600
    assert session_expires_at(int(now * 1000) + 30 * 60_000, now) - now >= 30 * 60
    assert session_expires_at(int(now * 1000) + 86_400_000, now) - now < 24 * 3600
