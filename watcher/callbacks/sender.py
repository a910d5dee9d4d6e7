"""One callback attempt over HTTP: sign it, send it to the checked address, judge the answer.

Delivered only on HTTP 200 with JSON {"received": true}. The whole attempt (DNS, connect, send,
answer) is bounded by `callbacks.timeout_s`; redirects are not followed; at most 64 KiB of the
answer is read.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass

import httpx

from watcher.callbacks import payload, signing
from watcher.callbacks.outbox import Job
from watcher.callbacks.urls import UnsafeCallbackUrl, pin
from watcher.clock import iso
from watcher.config import CallbackSettings

MAX_RESPONSE_BYTES = 64 * 1024
USER_AGENT = "kasa-watcher-callbacks/1"


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


class Sender:
    def __init__(self, http: httpx.AsyncClient, settings: CallbackSettings) -> None:
        self._http = http
        self._timeout_s = settings.timeout_s
        self._allow_private = settings.allow_private_urls

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
            error = f"{type(exc).__name__}: {exc}"[:500] if str(exc) else type(exc).__name__
        duration_ms = round((time.monotonic() - t0) * 1000)
        return Outcome(error is None, started_ms, duration_ms, code, _storable(error))

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        target = await pin(url, self._allow_private)
        request = self._http.build_request(
            "POST",
            target.url,
            content=body,
            headers={**headers, **target.headers},
            extensions=target.extensions,
            timeout=self._timeout_s,
        )
        response = await self._http.send(request, stream=True, follow_redirects=False)
        try:
            answer = b""
            async for chunk in response.aiter_bytes():
                answer += chunk
                if len(answer) >= MAX_RESPONSE_BYTES:
                    break
        finally:
            await response.aclose()
        return response.status_code, answer[:MAX_RESPONSE_BYTES]
