"""A merchant's callback endpoint, built on the merchant client: for the demo, tests, benches.

`CallbackReceiver` is a plain ASGI app. It verifies each callback with
`kasa_watcher_client.verify_webhook` (as a shop would), records what arrived (raw body,
headers, verified payload), and keeps the eventIds in flight so overlapping deliveries of one
event are caught. What it answers is up to `respond` (default: {"received": true} for
authentic callbacks, 401 otherwise). A request cut off mid-body (its sender died) is not a
callback: it is neither recorded nor answered.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from kasa_watcher_client import DEFAULT_TOLERANCE_S, WebhookVerificationError, verify_webhook

from watcher import jsonio
from watcher.callbacks.signing import EVENT_ID_HEADER
from watcher.clock import Clock

ACK = (200, b'{"received":true}')

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


@dataclass(frozen=True)
class Received:
    """One request as it arrived, and what verification made of it."""

    body: bytes
    headers: dict[str, str]
    payload: dict[str, Any] | None
    error: str | None

    @property
    def event_id(self) -> str:
        if self.payload is not None:
            return str(self.payload.get("eventId", ""))
        return self.headers.get(EVENT_ID_HEADER.lower(), "")


Responder = Callable[[Received], Awaitable[tuple[int, bytes]]]


async def acknowledge(received: Received) -> tuple[int, bytes]:
    if received.error is not None:
        return 401, jsonio.dumps({"received": False, "error": received.error}).encode()
    return ACK


class CallbackReceiver:
    def __init__(
        self,
        secret: str | None,
        respond: Responder = acknowledge,
        *,
        test_secret: str | None = None,
        tolerance_s: float = DEFAULT_TOLERANCE_S,
        now: Clock | None = None,
    ) -> None:
        self._secret = secret
        self._test_secret = test_secret
        self._respond = respond
        self._tolerance_s = tolerance_s
        self._now = now
        self.received: list[Received] = []
        self.in_flight: Counter[str] = Counter()
        self.overlaps: list[str] = []  # eventIds that arrived while already in flight
        self.arrived = asyncio.Condition()

    def verified(self) -> list[dict[str, Any]]:
        return [r.payload for r in self.received if r.payload is not None and r.error is None]

    def event_ids(self) -> Counter[str]:
        return Counter(r.event_id for r in self.received)

    async def wait_for(self, count: int) -> None:
        """Until at least `count` requests have arrived."""
        async with self.arrived:
            await self.arrived.wait_for(lambda: len(self.received) >= count)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = await _body(receive)
        if body is None:
            return  # the sender went away mid-body (killed): nothing arrived, nobody to answer
        received = self._check(body, _headers(scope))
        event_id = received.event_id
        if self.in_flight[event_id]:
            self.overlaps.append(event_id)
        self.in_flight[event_id] += 1
        try:
            async with self.arrived:
                self.received.append(received)
                self.arrived.notify_all()
            status, body = await self._respond(received)
        finally:
            self.in_flight[event_id] -= 1
        await send({"type": "http.response.start", "status": status, "headers": _json_headers()})
        await send({"type": "http.response.body", "body": body})

    def _check(self, body: bytes, headers: dict[str, str]) -> Received:
        if self._secret is None:
            return Received(body, headers, _loose(body), None)
        now_s = self._now() / 1000 if self._now is not None else None
        try:
            payload = verify_webhook(
                body,
                headers,
                self._secret,
                test_secret=self._test_secret,
                tolerance_s=self._tolerance_s,
                now=now_s,
            )
        except WebhookVerificationError as exc:
            return Received(body, headers, _loose(body), str(exc))
        return Received(body, headers, payload, None)


def _loose(body: bytes) -> dict[str, Any] | None:
    try:
        data = jsonio.loads(body)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


async def _body(receive: Receive) -> bytes | None:
    """The whole request body, or None when the client disconnected before sending it all."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


def _json_headers() -> list[tuple[bytes, bytes]]:
    return [(b"content-type", b"application/json")]
