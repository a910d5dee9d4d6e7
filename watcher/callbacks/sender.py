"""One callback attempt over HTTP: sign it, send it to the checked address, judge the answer.

Delivered only on HTTP 200 with JSON {"received": true}. The whole attempt (DNS, connect, send,
answer) is bounded by `callbacks.timeout_s`; redirects are not followed; at most 64 KiB of the
answer is read.

The requests go out through aiohttp (`callback_session`), not httpx: at a few hundred
callbacks a second the HTTP client was most of a worker's CPU, and aiohttp spends about a
tenth of httpx's on a POST (bench/callbacks_throughput.py). What goes on the wire is what
httpx sent: the same headers in the same order, the same trusted certificates (certifi's, or
SSL_CERT_FILE / SSL_CERT_DIR), a proxy named by the environment honoured.
"""

from __future__ import annotations

import asyncio
import json
import re
import ssl
import time
import types
import urllib.request
from dataclasses import dataclass

import aiohttp
import httpx
import yarl

from watcher.callbacks import payload, signing
from watcher.callbacks.outbox import Job
from watcher.callbacks.urls import PinnedTarget, UnsafeCallbackUrl, pin
from watcher.clock import iso
from watcher.config import CallbackSettings

MAX_RESPONSE_BYTES = 64 * 1024
# An answer's status line and each of its header lines: h11's limit for a whole head, which
# httpx applied before (aiohttp's default, 8190, would fail a merchant with a long cookie).
MAX_HEAD_LINE_BYTES = 16 * 1024
USER_AGENT = "kasa-watcher-callbacks/1"
# The headers httpx added before ours, in its order (an explicit Accept-Encoding: httpx
# offered br or zstd only where their packages happened to be installed).
_CLIENT_HEADERS = {"Accept": "*/*", "Accept-Encoding": "gzip, deflate"}


def callback_session(trusted: ssl.SSLContext | None = None) -> aiohttp.ClientSession:
    """The HTTP session callbacks go out through (one per process, closed with it).

    `trusted`: the certificates to verify servers with (default: httpx's, see above). No
    cookies are kept (an answer's Set-Cookie is never sent to anyone), no session-wide
    timeout (each attempt has its own), no connection limit (the worker's slots are one).
    """
    trace = aiohttp.TraceConfig()
    trace.on_connection_reuseconn.append(_on_reuse)
    return aiohttp.ClientSession(
        trace_configs=[trace],
        connector=aiohttp.TCPConnector(limit=0, ssl=trusted or httpx.create_ssl_context()),
        cookie_jar=aiohttp.DummyCookieJar(),
        timeout=aiohttp.ClientTimeout(total=None),
        max_line_size=MAX_HEAD_LINE_BYTES,
        max_field_size=MAX_HEAD_LINE_BYTES,
    )


@dataclass(frozen=True)
class Outcome:
    delivered: bool
    started_ms: int
    duration_ms: int
    status_code: int | None = None
    error: str | None = None


def judge(status_code: int, body: bytes) -> str | None:
    """None when the answer acknowledges the callback; else why it does not."""
    if status_code != 200:
        return f"HTTP {status_code}"
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict) and data.get("received") is True:
        return None
    shown = body[:200].decode("utf-8", "replace")
    return f'HTTP 200 without {{"received": true}}: {shown!r}'


NO_TEST_SECRET = (
    "the merchant has no test webhook secret yet: issue one with `watcher merchant test-secret`"
)


def request_parts(job: Job, secret: str, timestamp: str) -> tuple[bytes, dict[str, str]]:
    """The body and headers of one attempt, signed at `timestamp` with `secret` (the live or
    the test webhook secret, by the payment's mode).

    The format: docs/merchant-api.md#callbacks.
    """
    signed = payload.callback_payload(job.event, secret, timestamp, livemode=job.livemode)
    body = payload.encode(signed)
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": USER_AGENT,
        signing.SIGNATURE_HEADER: signed["signature"],
        signing.TIMESTAMP_HEADER: timestamp,
        signing.ATTEMPT_HEADER: str(job.attempt),
        signing.BODY_SIGNATURE_HEADER: signing.sign_body(secret, timestamp, body),
        signing.EVENT_ID_HEADER: job.event.event_id,
    }
    return body, headers


def _storable(error: str | None) -> str | None:
    """An error text any database takes (no NUL, no lone surrogate): a mark that cannot be
    stored would leave the attempt unrecorded, and the callback looping on its lease."""
    if error is None:
        return None
    return error.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


_URL = re.compile(r"https?://[^\s'\"<>]+", re.IGNORECASE)
# The connection closed before any answer came: on a kept-alive connection, the server's
# idle close crossing our request.
_STALE = (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)


def wire_headers(target: PinnedTarget, headers: dict[str, str]) -> dict[str, str]:
    """All the request's headers but Content-Length (the client adds it last), in order."""
    first = {"Host": target.headers["Host"], **_CLIENT_HEADERS}
    if "Connection" not in target.headers:
        first["Connection"] = "keep-alive"
    return {**first, **headers, **target.headers}


def describe_error(exc: Exception) -> str:
    """An exception as stored and logged: its class and message, never a URL (aiohttp puts
    the request's in some messages, and a callback URL may carry the shop's token)."""
    if isinstance(exc, aiohttp.ClientResponseError):
        text = f"{exc.status}, {exc.message}" if exc.status else exc.message
    else:
        text = str(exc)
    text = _URL.sub("the callback URL", text)
    return f"{type(exc).__name__}: {text}"[:500] if text else type(exc).__name__


class Sender:
    def __init__(self, http: aiohttp.ClientSession, settings: CallbackSettings) -> None:
        self._http = http
        self._timeout_s = settings.timeout_s
        self._allow_private = settings.allow_private_urls
        # Read once, as httpx read them when its client was made.
        self._proxies = urllib.request.getproxies_environment()

    async def send(self, job: Job, started_ms: int) -> Outcome:
        """One attempt; never raises (but for cancellation): whatever goes wrong is a failed
        attempt, recorded and counted, so a URL that breaks the sender still ends dead."""
        if job.secret is None:  # a test callback is never signed with the live secret
            return Outcome(False, started_ms, 0, None, NO_TEST_SECRET)
        t0 = time.monotonic()
        code: int | None = None
        try:
            body, headers = request_parts(job, job.secret, iso(started_ms))
            async with asyncio.timeout(self._timeout_s):
                code, answer = await self._post(job.url, body, headers)
            error = judge(code, answer)
        except TimeoutError:
            error = f"timed out after {self._timeout_s:g}s"
        except UnsafeCallbackUrl as exc:
            error = f"refused: {exc}"[:500]
        except Exception as exc:
            error = describe_error(exc)
        duration_ms = round((time.monotonic() - t0) * 1000)
        return Outcome(error is None, started_ms, duration_ms, code, _storable(error))

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        target = await pin(url, self._allow_private)
        first = _Connection()
        try:
            return await self._exchange(target, body, headers, first)
        except _STALE:
            if not first.reused:
                raise  # a new connection failed or was dropped: the merchant's server did it
            # A kept-alive connection the server had just closed (httpx checked for that
            # before reusing one): once more, to the same checked address, on a new one. If
            # the request did arrive, the merchant sees it twice, as it may any callback
            # (eventId).
            return await self._exchange(target, body, headers, _Connection())

    async def _exchange(
        self, target: PinnedTarget, body: bytes, headers: dict[str, str], conn: _Connection
    ) -> tuple[int, bytes]:
        async with self._http.post(
            yarl.URL(str(target.url), encoded=True),  # as httpx wrote it, not re-quoted
            data=body,
            headers=wire_headers(target, headers),
            allow_redirects=False,
            server_hostname=target.server_name,
            proxy=self._proxy(target.url),
            trace_request_ctx=conn,
        ) as response:
            # Released unread past the limit: the connection is closed, never reused.
            answer = await _read_at_most(response.content, MAX_RESPONSE_BYTES)
            if target.url.scheme == "https":
                # A TLS connection is checked for one name: never reused for another name on
                # the same address, whatever the HTTP client's pool would do.
                response.close()
            return response.status, answer

    def _proxy(self, url: httpx.URL) -> str | None:
        """The proxy the environment names for the pinned URL, as httpx matched it."""
        if not self._proxies:
            return None
        if urllib.request.proxy_bypass(url.host):  # NO_PROXY
            return None
        return self._proxies.get(url.scheme) or self._proxies.get("all")


class _Connection:
    """Whether the attempt went out on a kept-alive connection (set by the session's trace)."""

    reused = False


async def _on_reuse(
    _session: aiohttp.ClientSession,
    ctx: types.SimpleNamespace,
    _params: aiohttp.TraceConnectionReuseconnParams,
) -> None:
    if isinstance(ctx.trace_request_ctx, _Connection):
        ctx.trace_request_ctx.reused = True


async def _read_at_most(content: aiohttp.StreamReader, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = await content.read(limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)
