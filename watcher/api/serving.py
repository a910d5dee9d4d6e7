"""uvicorn inside our own event loop: the daemon's API, the demo's merchant, test servers."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import uvicorn


class Server(uvicorn.Server):
    """uvicorn without its own signal handling: the daemon owns SIGTERM/SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    @property
    def port(self) -> int:
        for srv in self.servers:
            for sock in srv.sockets:
                return int(sock.getsockname()[1])
        return int(self.config.port)


async def start(server: Server, sockets: list[socket.socket] | None = None) -> asyncio.Task[None]:
    """Start serving (on `sockets` when given, already bound); returns once listening, or
    raises why it could not."""
    task = asyncio.create_task(server.serve(sockets), name="uvicorn")
    while not server.started:
        if task.done():
            await task
            raise OSError(f"could not listen on {server.config.host}:{server.config.port}")
        await asyncio.sleep(0.01)
    return task


@contextlib.asynccontextmanager
async def serve_asgi(app: Any, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
    """Serve `app` on loopback (a free port by default); yields its base URL."""
    config = uvicorn.Config(
        app, host=host, port=port, log_config=None, access_log=False, lifespan="off"
    )
    server = Server(config)
    task = await start(server)
    try:
        yield f"http://{host}:{server.port}"
    finally:
        server.should_exit = True
        await task
