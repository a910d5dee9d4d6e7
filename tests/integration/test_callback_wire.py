"""One attempt as the merchant's server sees it: real sockets on loopback, plain and TLS.

The sender's guarantees, each against a server that records the raw request: the headers
(names, order, values) httpx used to send, the TLS server name and certificate checked
against the URL's name while the connection goes to the checked address, no redirect
followed, at most 64 KiB of an answer read, no cookie carried from one answer to the next,
and a proxy named by the environment honoured.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from kasa_watcher_client import verify_webhook

from tests.support.tls import LoopbackCA
from watcher.callbacks.outbox import Job
from watcher.callbacks.sender import Outcome, Sender, callback_session, describe_error
from watcher.clock import now_ms
from watcher.config import CallbackSettings
from watcher.db.models import PaymentEvent

SECRET = "whsec_wire_test_secret"
ACK = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 17\r\n\r\n"
    b'{"received":true}'
)


@dataclass
class Request:
    head: bytes
    body: bytes

    @property
    def lines(self) -> list[str]:
        return self.head.decode("latin-1").split("\r\n")

    @property
    def headers(self) -> list[tuple[str, str]]:
        pairs = (line.split(":", 1) for line in self.lines[1:] if line)
        return [(name, value.strip()) for name, value in pairs]


@dataclass
class RawServer:
    """Records each request; answers with `answer(request)` (raw bytes), then closes."""

    answer: Callable[[Request], Awaitable[bytes]]
    requests: list[Request] = field(default_factory=list)
    server_names: list[str | None] = field(default_factory=list)
    keep_alive: bool = False  # serve more requests on the connection, as most servers do

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                request = Request(head, await reader.readexactly(length))
                self.requests.append(request)
                writer.write(await self.answer(request))
                await writer.drain()
                if not self.keep_alive:
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def serving(
    server: RawServer, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None
) -> AsyncIterator[int]:
    if tls is not None:
        tls.sni_callback = lambda _sock, name, _ctx: server.server_names.append(name)
    listening = await asyncio.start_server(server.handle, host, 0, ssl=tls)
    try:
        yield listening.sockets[0].getsockname()[1]
    finally:
        listening.close()


async def answer(raw: bytes) -> Callable[[Request], Awaitable[bytes]]:
    async def respond(_: Request) -> bytes:
        return raw

    return respond


def job(url: str, attempt: int = 1) -> Job:
    data = {
        "transactionId": "txn_wire",
        "externalRef": "ORD-1",
        "amount": "1000.00",
        "currency": "TRY",
        "fullName": "Ahmet Yılmaz",
        "status": "completed",
        "metadata": {},
    }
    event = PaymentEvent(
        event_id="evt_wire",
        payment_id="txn_wire",
        merchant_id=1,
        type="payment.completed",
        sequence=1,
        status="completed",
        created_ms=now_ms(),
        data_json=json.dumps(data),
    )
    return Job(1, "h:1", url, attempt, event, SECRET)


async def send(url: str, trusted: ssl.SSLContext | None = None, **settings: object) -> Outcome:
    config = CallbackSettings.model_validate({"allow_private_urls": True, **settings})
    async with callback_session(trusted) as http:
        return await Sender(http, config).send(job(url), now_ms())


async def test_the_request_carries_the_headers_httpx_sent_in_its_order() -> None:
    server = RawServer(await answer(ACK))
    async with serving(server) as port:
        outcome = await send(f"http://127.0.0.1:{port}/kasa?token=abc")
    assert outcome.delivered, outcome.error
    [got] = server.requests
    assert got.lines[0] == "POST /kasa?token=abc HTTP/1.1"
    assert [name for name, _ in got.headers] == [
        "Host",
        "Accept",
        "Accept-Encoding",
        "Connection",
        "Content-Type",
        "User-Agent",
        "X-Signature",
        "X-Timestamp",
        "X-Attempt",
        "X-Body-Signature",
        "X-Event-Id",
        "Content-Length",
    ]
    headers = dict(got.headers)
    assert headers["Host"] == f"127.0.0.1:{port}"
    assert (headers["Accept"], headers["Accept-Encoding"]) == ("*/*", "gzip, deflate")
    assert headers["Connection"] == "keep-alive"
    assert headers["Content-Type"] == "application/json; charset=utf-8"
    assert headers["User-Agent"] == "kasa-watcher-callbacks/1"
    assert (headers["X-Attempt"], headers["X-Event-Id"]) == ("1", "evt_wire")
    assert headers["Content-Length"] == str(len(got.body))
    payload = verify_webhook(got.body, headers, SECRET)
    assert payload["eventId"] == "evt_wire" and payload["timestamp"] == headers["X-Timestamp"]


async def test_https_connects_to_the_checked_address_and_checks_the_name(tmp_path: Path) -> None:
    ca = LoopbackCA.create()
    server = RawServer(await answer(ACK))
    async with serving(server, "localhost", ca.server_context("localhost", tmp_path)) as port:
        outcome = await send(f"https://localhost:{port}/kasa", ca.client_context())
    assert outcome.delivered, outcome.error
    assert server.server_names == ["localhost"]  # SNI: the URL's name, not the address
    headers = dict(server.requests[0].headers)
    assert headers["Host"] == f"localhost:{port}" and headers["Connection"] == "close"


async def test_a_certificate_for_another_name_is_refused(tmp_path: Path) -> None:
    ca = LoopbackCA.create()
    server = RawServer(await answer(ACK))
    async with serving(server, "localhost", ca.server_context("shop.example", tmp_path)) as port:
        outcome = await send(f"https://localhost:{port}/kasa", ca.client_context())
    assert not outcome.delivered and server.requests == []
    assert outcome.error is not None and "certificate" in outcome.error.lower(), outcome.error


async def test_an_untrusted_certificate_is_refused(tmp_path: Path) -> None:
    server = RawServer(await answer(ACK))
    tls = LoopbackCA.create().server_context("localhost", tmp_path)
    async with serving(server, "localhost", tls) as port:
        outcome = await send(f"https://localhost:{port}/kasa", LoopbackCA.create().client_context())
    assert not outcome.delivered and server.requests == []
    assert outcome.error is not None and "certificate" in outcome.error.lower(), outcome.error


async def test_a_redirect_is_an_answer_not_followed() -> None:
    target = RawServer(await answer(ACK))
    async with serving(target) as target_port:
        location = f"http://127.0.0.1:{target_port}/elsewhere"
        redirect = f"HTTP/1.1 307 Temporary Redirect\r\nLocation: {location}\r\n"
        server = RawServer(await answer(redirect.encode() + b"Content-Length: 0\r\n\r\n"))
        async with serving(server) as port:
            outcome = await send(f"http://127.0.0.1:{port}/kasa")
    assert (outcome.delivered, outcome.status_code, outcome.error) == (False, 307, "HTTP 307")
    assert len(server.requests) == 1 and target.requests == []


async def test_no_more_than_64_kib_of_an_answer_is_read() -> None:
    big = b'{"received": true, "pad": "' + b"x" * (8 << 20) + b'"}'
    head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(big)}\r\n\r\n".encode()
    server = RawServer(await answer(head + big))
    async with serving(server) as port:
        outcome = await send(f"http://127.0.0.1:{port}/kasa", timeout_s=10)
    assert (outcome.delivered, outcome.status_code) == (False, 200)
    assert outcome.error is not None and outcome.error.startswith('HTTP 200 without {"received"')


async def test_a_cookie_from_one_answer_is_never_sent_again() -> None:
    cookie = b"Set-Cookie: session=merchant-a; Path=/\r\n"
    server = RawServer(await answer(ACK.replace(b"\r\n\r\n", b"\r\n" + cookie + b"\r\n", 1)))
    config = CallbackSettings(allow_private_urls=True)
    async with serving(server) as port, callback_session() as http:
        sender = Sender(http, config)
        for attempt in (1, 2):
            outcome = await sender.send(job(f"http://127.0.0.1:{port}/kasa", attempt), now_ms())
            assert outcome.delivered, outcome.error
    assert [dict(r.headers).get("Cookie") for r in server.requests] == [None, None]


async def test_a_proxy_named_by_the_environment_carries_the_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    proxy = RawServer(await answer(ACK))  # answers itself, as if it had forwarded
    async with serving(proxy) as proxy_port:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy_port}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        monkeypatch.delenv("http_proxy", raising=False)
        outcome = await send("http://127.0.0.1:9/kasa")  # nothing listens on port 9
    assert outcome.delivered, outcome.error
    [got] = proxy.requests
    assert got.lines[0] == "POST http://127.0.0.1:9/kasa HTTP/1.1"


async def test_a_kept_alive_connection_the_server_closed_is_not_a_failed_attempt() -> None:
    # The server closes after each answer without saying so: the next attempt meets the
    # closed connection in the pool and must not count it as the merchant's failure.
    server = RawServer(await answer(ACK))
    async with serving(server) as port, callback_session() as http:
        sender = Sender(http, CallbackSettings(allow_private_urls=True))
        for attempt in range(1, 21):
            outcome = await sender.send(job(f"http://127.0.0.1:{port}/kasa", attempt), now_ms())
            assert outcome.delivered, (attempt, outcome.error)
    assert len(server.requests) == 20


def test_an_error_is_stored_without_the_url_and_its_token() -> None:
    exc = aiohttp.ClientOSError(None, "Can not write request body for http://1.2.3.4/k?token=s3")
    assert describe_error(exc) == (
        "ClientOSError: [Errno None] Can not write request body for the callback URL"
    )


async def test_a_tls_connection_checked_for_one_name_is_never_used_for_another(
    tmp_path: Path,
) -> None:
    # One address, a kept-alive TLS connection checked for "localhost": a callback to the same
    # address under another name gets its own connection, whose certificate does not fit.
    ca = LoopbackCA.create()
    server = RawServer(await answer(ACK), keep_alive=True)
    config = CallbackSettings(allow_private_urls=True)
    async with (
        serving(server, "127.0.0.1", ca.server_context("localhost", tmp_path)) as port,
        callback_session(ca.client_context()) as http,
    ):
        sender = Sender(http, config)
        first = await sender.send(job(f"https://localhost:{port}/a"), now_ms())
        second = await sender.send(job(f"https://127.0.0.1:{port}/b?token=other"), now_ms())
    assert first.delivered, first.error
    assert not second.delivered and second.error is not None
    assert "certificate" in second.error.lower(), second.error
    assert [r.lines[0] for r in server.requests] == ["POST /a HTTP/1.1"]


async def test_a_new_connection_dropped_without_an_answer_is_one_request_not_two() -> None:
    # Only a kept-alive connection closed under us is retried: a server that reads the
    # callback and hangs up got it once, and sees it once.
    server = RawServer(await answer(b""))
    async with serving(server) as port:
        outcome = await send(f"http://127.0.0.1:{port}/kasa")
    assert not outcome.delivered and outcome.status_code is None
    assert len(server.requests) == 1
