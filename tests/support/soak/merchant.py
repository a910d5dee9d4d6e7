"""The merchant's callback endpoint for the soak: HTTP on 127.0.0.1, every callback verified
with the merchant client (as a shop would) and counted by eventId.

`acked[eventId]` counts the receipts it answered with {"received": true}; `refused` the
attempts it turned away while `down` (answered 503, as a shop behind a dead backend does).
An eventId acknowledged twice is a duplicate delivery, allowed by the contract (a crash
between the merchant's 200 and the outbox's commit) and counted; one never acknowledged is
a lost event.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from watcher.api.serving import serve_asgi
from watcher.callbacks.receiver import ACK, CallbackReceiver, Received

DOWN = (503, b'{"error":"backend unavailable"}')


@dataclass
class Merchant:
    secret: str
    down: bool = False
    acked: Counter[str] = field(default_factory=Counter)
    refused: int = 0
    rejected: list[str] = field(default_factory=list)  # failed verification: why
    payloads: dict[str, dict[str, Any]] = field(default_factory=dict)  # eventId -> first payload
    url: str = ""

    async def respond(self, received: Received) -> tuple[int, bytes]:
        if received.error is not None or received.payload is None:
            self.rejected.append(received.error or "no payload")
            return 401, b'{"received":false}'
        if self.down:
            self.refused += 1
            return DOWN
        event_id = str(received.payload.get("eventId", ""))
        self.acked[event_id] += 1
        self.payloads.setdefault(event_id, received.payload)
        return ACK

    @property
    def receipts(self) -> int:
        return sum(self.acked.values())

    @property
    def duplicates(self) -> int:
        return sum(n - 1 for n in self.acked.values() if n > 1)


@asynccontextmanager
async def serving(merchant: Merchant) -> AsyncIterator[Merchant]:
    receiver = CallbackReceiver(merchant.secret, merchant.respond, tolerance_s=3600)
    async with serve_asgi(receiver) as url:
        merchant.url = f"{url}/hook"
        receiver.received.clear()
        try:
            yield merchant
        finally:
            receiver.received.clear()
