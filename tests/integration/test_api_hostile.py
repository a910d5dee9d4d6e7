"""Hostile input over real HTTP: every malformed request gets its documented 4xx, never a 500,
and nothing accepted can make later reads of the payment fail (docs/merchant-api.md#errors)."""

from __future__ import annotations

import time

from tests.integration.conftest import ApiHarness

_BASE = '"amount": 10000, "fullName": "A", "externalRef": "H-1", "provider": "crypto"'


def _with(extra: str) -> bytes:
    return ("{" + _BASE + ", " + extra + "}").encode()


# (raw body, expected error code)
HOSTILE: list[tuple[bytes, str]] = [
    # An exponent past the decimal context: counting decimals used to overflow.
    (b'{"amount": 1e1000000, "fullName": "A", "externalRef": "H-1"}', "INVALID_AMOUNT"),
    (b'{"amount": 1e-1000000, "fullName": "A", "externalRef": "H-1"}', "INVALID_AMOUNT"),
    # Metadata numbers that overflow, or that no later JSON read could take back.
    (_with('"metadata": {"n": 1e1000000}'), "INVALID_REQUEST"),
    (_with('"metadata": {"n": 1e5000}'), "INVALID_REQUEST"),
    (_with('"metadata": {"n": 1.00000000000000000001}'), "INVALID_REQUEST"),
    # A string shaped like the JSON writer's internal decimal marker.
    (_with('"metadata": {"s": "\\u0000dec:1.2.3"}'), "INVALID_REQUEST"),
    (_with('"metadata": {"userId": "\\u0000"}'), "INVALID_REQUEST"),
    # Deep nesting, inside metadata and of the whole body.
    (_with('"metadata": ' + '{"a": ' * 500 + "1" + "}" * 500), "INVALID_REQUEST"),
    (_with('"metadata": ' + '{"a": ' * 3000 + "1" + "}" * 3000), "INVALID_REQUEST"),
    (b"[" * 30000 + b"]" * 30000, "INVALID_REQUEST"),
    # Lone UTF-16 surrogates: valid JSON escapes, not encodable text.
    (_with('"fullName": "\\ud800"'), "INVALID_REQUEST"),
    (_with('"externalRef": "\\udfff"'), "INVALID_REQUEST"),
    (_with('"metadata": {"\\ud800": 1}'), "INVALID_REQUEST"),
    (_with('"returnUrl": "http://[::1"'), "INVALID_REQUEST"),
    (_with('"cancelUrl": "http://[::1/x"'), "INVALID_REQUEST"),
    # `$` matched before a trailing newline.
    (_with('"email": "a@b.co\\n"'), "INVALID_EMAIL"),
]


async def test_hostile_create_bodies_get_their_4xx_quickly(api: ApiHarness) -> None:
    for content, code in HOSTILE:
        t0 = time.monotonic()
        resp = await api.http.post(
            f"{api.url}/api/payment/create",
            content=content,
            headers={**api.headers(), "content-type": "application/json"},
        )
        shown = content[:80]
        assert resp.status_code == 400, (shown, resp.text)
        assert resp.json()["error"]["code"] == code, (shown, resp.text)
        assert time.monotonic() - t0 < 1.0, shown


async def test_accepted_metadata_reads_back_and_the_payment_can_be_cancelled(
    api: ApiHarness,
) -> None:
    meta = '{"userId": 1e3, "price": 0.10, "big": 123456789012345, "tiny": 1e-100, "s": "Şğ"}'
    resp = await api.http.post(
        f"{api.url}/api/payment/create",
        content=_with('"metadata": ' + meta),
        headers={**api.headers(), "content-type": "application/json"},
    )
    assert resp.status_code == 200, resp.text
    txn = resp.json()["transactionId"]
    status = await api.http.get(
        f"{api.url}/api/payment/status", params={"transactionId": txn}, headers=api.headers()
    )
    assert status.status_code == 200, status.text
    cancel = await api.http.post(f"{api.url}/api/payment/{txn}/cancel", headers=api.headers())
    assert cancel.status_code == 200, cancel.text


async def test_events_cursor_of_non_ascii_digits_is_400(api: ApiHarness) -> None:
    for after in ("²", "١٢", "1²"):
        resp = await api.http.get(
            f"{api.url}/api/events", params={"after": after}, headers=api.headers()
        )
        assert resp.status_code == 400, (after, resp.text)
        assert resp.json()["error"]["code"] == "INVALID_REQUEST"


async def test_lookups_by_ids_no_payment_can_have_are_404(api: ApiHarness) -> None:
    # PostgreSQL text cannot hold NUL: the driver used to fail on the query itself.
    for params in ({"transactionId": "txn_\x00"}, {"externalRef": "R\x00"}):
        resp = await api.http.get(
            f"{api.url}/api/payment/status", params=params, headers=api.headers()
        )
        assert resp.status_code == 404, (params, resp.text)
    resp = await api.http.post(f"{api.url}/api/payment/txn_%00/cancel", headers=api.headers())
    assert resp.status_code == 404, resp.text


async def test_events_cursor_past_any_id_is_an_empty_page(api: ApiHarness) -> None:
    # Event ids are 32-bit on PostgreSQL; an 18-digit cursor used to overflow the parameter.
    resp = await api.http.get(
        f"{api.url}/api/events", params={"after": "999999999999999999"}, headers=api.headers()
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["events"] == []
    assert resp.json()["next"] == "999999999999999999"


async def test_duplicate_keys_are_refused_and_create_nothing(api: ApiHarness) -> None:
    # Last-wins parsing made {"amount":1000,"amount":2000} a 2000 TRY payment, while a proxy
    # or WAF reading the first key saw 1000: one body must mean one thing to every reader.
    bodies = [
        b'{"amount":1000,"amount":2000,"fullName":"A","externalRef":"DUP-1"}',
        b'{"amount":1000,"fullName":"A","externalRef":"DUP-2","externalRef":"DUP-3"}',
        _with('"metadata": {"userId": "u1", "userId": "u2"}'),
    ]
    for content in bodies:
        resp = await api.http.post(
            f"{api.url}/api/payment/create",
            content=content,
            headers={**api.headers(), "content-type": "application/json"},
        )
        assert resp.status_code == 400, (content, resp.text)
        error = resp.json()["error"]
        assert error["code"] == "INVALID_REQUEST" and "duplicate key" in error["message"]
    for ref in ("DUP-1", "DUP-2", "DUP-3", "H-1"):
        status = await api.http.get(
            f"{api.url}/api/payment/status", params={"externalRef": ref}, headers=api.headers()
        )
        assert status.status_code == 404, (ref, status.text)


async def test_a_body_not_in_utf8_is_refused_and_creates_nothing(api: ApiHarness) -> None:
    # JSON between systems is UTF-8 (RFC 8259). Python's json.loads also guesses UTF-16 and
    # UTF-32 from bytes, so a body a proxy or WAF could not read as JSON at all made a payment.
    text = '{"amount":1000,"fullName":"A","externalRef":"U16-1","provider":"crypto"}'
    for content in (text.encode("utf-16"), text.encode("utf-16-le"), text.encode("utf-32")):
        resp = await api.http.post(
            f"{api.url}/api/payment/create",
            content=content,
            headers={**api.headers(), "content-type": "application/json"},
        )
        assert resp.status_code == 400, resp.text
        assert resp.json()["error"]["code"] == "INVALID_REQUEST"
    status = await api.http.get(
        f"{api.url}/api/payment/status", params={"externalRef": "U16-1"}, headers=api.headers()
    )
    assert status.status_code == 404, status.text
