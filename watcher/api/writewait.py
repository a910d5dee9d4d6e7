"""API requests wait a bounded time for their turn to write to SQLite.

A request that cannot begin writing within REQUEST_WRITE_WAIT_S (another process holds the
file's write lock, or this process's writers queue that long) answers 503 with Retry-After,
as while the database is unreachable, instead of waiting SQLite's busy timeout behind every
request queued before it (db.engine.bounded_writes). The daemon's loops are not bounded:
they have no client waiting, and retry anyway. Nor are providers' webhooks (WEBHOOKS): some
are sent once and never again (Kazawallet's), so a 503 would lose the payment they report;
they wait as long as a loop does. PostgreSQL is not concerned.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from watcher.db.engine import bounded_writes

REQUEST_WRITE_WAIT_S = 10.0
WEBHOOKS = "/providers/"  # watcher.api.providers: /providers/{name}/webhook[/{token}]


class BoundedWrites:
    def __init__(self, app: ASGIApp, seconds: float = REQUEST_WRITE_WAIT_S) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(WEBHOOKS):
            await self.app(scope, receive, send)
            return
        with bounded_writes(self.seconds):
            await self.app(scope, receive, send)
