"""DevChainServer: the DevChain over real HTTP on loopback (Starlette, served by uvicorn).

Serves java-tron's /wallet/ and /walletsolidity/ API (`api.py`), the control API under
/_dev/ (`control.py`) and, when given, the routes of the fake Binance, Stripe, AcidPanel and
Kazawallet (the provider stand-ins of watcher.devchain.{stripe,acidpanel,kazawallet}). With
`block_time_ms` it mines a block on that timer. Run it in the caller's event loop
(`await start()` / `await stop()`, or `async with`), or on its own thread for synchronous
code (`start_in_thread()` / `stop_in_thread()`, or `with`).

Faults queued on the chain are played here, one per chain request; `requests` records the
path and headers of every chain and Binance request (not the control API's), so a test can
check, for instance, that the API key header was sent.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Generator
from contextlib import contextmanager
from types import TracebackType

import structlog
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from watcher.devchain import faults
from watcher.devchain.acidpanel import FakeAcidPanel
from watcher.devchain.api import NodeApi, ParamError, error_body, parse_body
from watcher.devchain.binance import FakeBinance
from watcher.devchain.chain import DevChain
from watcher.devchain.control import ControlApi
from watcher.devchain.faults import Fault, FaultKind
from watcher.devchain.kazawallet import FakeKazawallet
from watcher.devchain.stripe import FakeStripe

API_KEY_HEADER = "tron-pro-api-key"
_JSON = "application/json"

log = structlog.get_logger(__name__)


class DevChainServer:
    def __init__(
        self,
        chain: DevChain,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        block_time_ms: int | None = None,
        binance: FakeBinance | None = None,
        stripe: FakeStripe | None = None,
        acidpanel: FakeAcidPanel | None = None,
        kazawallet: FakeKazawallet | None = None,
        api_key: str | None = None,
    ) -> None:
        self.chain = chain
        self.host = host
        self.port = port
        self.block_time_ms = block_time_ms
        self.binance = binance
        self.stripe = stripe
        self.acidpanel = acidpanel
        self.kazawallet = kazawallet
        self.api_key = api_key
        self.url = ""
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.hang_s = 30.0  # how long a `timeout` fault holds a request
        self.slow_s = 2.0  # how long a `slow` fault delays an answer
        self.node = NodeApi(chain)
        self.app: ASGIApp = _RequestLog(self._starlette(), self.requests)
        self._server: uvicorn.Server | None = None
        self._serving: asyncio.Task[None] | None = None
        self._miner: asyncio.Task[None] | None = None
        self._closing: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._thread_loop: asyncio.AbstractEventLoop | None = None
        self._thread_stop: asyncio.Event | None = None

    # -- lifecycle in the caller's loop --------------------------------------------------

    async def start(self, *, handle_signals: bool = False) -> None:
        """Listen; with `handle_signals` SIGINT/SIGTERM stop the server (`serve()` does)."""
        config = uvicorn.Config(
            self.app,
            host=self.host,
            port=self.port,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
        )
        self._server = (uvicorn.Server if handle_signals else _EmbeddedServer)(config)
        self._closing = asyncio.Event()
        self._serving = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._serving.done():
                self._serving.result()
                raise RuntimeError("the devchain server stopped before it started")
            await asyncio.sleep(0.005)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://{self.host}:{port}"
        for fake in self._providers():
            if not fake.base_url:
                fake.base_url = self.url  # where its payment pages are said to be
        if self.block_time_ms:
            self._miner = asyncio.create_task(self._mine_forever(self.block_time_ms / 1000))
        log.info("devchain.started", url=self.url, head=self.chain.head_number)

    async def stop(self) -> None:
        if self._miner is not None:
            self._miner.cancel()
            await asyncio.gather(self._miner, return_exceptions=True)
            self._miner = None
        if self._closing is not None:
            self._closing.set()
        if self.binance is not None:
            self.binance.unblock()
        for fake in self._providers():
            fake.unblock()
        if self._server is not None and self._serving is not None:
            self._server.should_exit = True
            await self._serving
            self._server = self._serving = None
        log.info("devchain.stopped", url=self.url)

    async def serve(self) -> None:
        """Start, serve until the process gets SIGINT or SIGTERM, then stop."""
        await self.start(handle_signals=True)
        await self.wait()

    async def wait(self) -> None:
        """Once started: serve until the process gets SIGINT or SIGTERM, then stop."""
        try:
            if self._serving is not None:
                await self._serving
        finally:
            await self.stop()

    async def __aenter__(self) -> DevChainServer:
        await self.start()
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # -- lifecycle on a thread of its own ------------------------------------------------

    def start_in_thread(self) -> None:
        """Serve from a background thread with its own event loop; returns once listening."""
        ready = threading.Event()
        failure: list[BaseException] = []

        async def main() -> None:
            self._thread_loop = asyncio.get_running_loop()
            self._thread_stop = asyncio.Event()
            try:
                await self.start()
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                return
            ready.set()
            await self._thread_stop.wait()
            await self.stop()

        self._thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            raise failure[0]

    def stop_in_thread(self) -> None:
        if self._thread is None or self._thread_loop is None or self._thread_stop is None:
            return
        self._thread_loop.call_soon_threadsafe(self._thread_stop.set)
        self._thread.join()
        self._thread = None

    def __enter__(self) -> DevChainServer:
        self.start_in_thread()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop_in_thread()

    # -- the app -------------------------------------------------------------------------

    def _starlette(self) -> Starlette:
        routes: list[BaseRoute] = [
            Route(path, self._chain_request, methods=["GET", "POST"]) for path in self.node.paths()
        ]
        routes += ControlApi(self.chain).routes()
        if self.binance is not None:
            routes += self.binance.routes()
        for fake in self._providers():
            routes += fake.routes()
        return Starlette(routes=routes)

    def _providers(self) -> list[FakeStripe | FakeAcidPanel | FakeKazawallet]:
        return [f for f in (self.stripe, self.acidpanel, self.kazawallet) if f is not None]

    async def _chain_request(self, request: Request) -> Response:
        path = request.url.path
        if self.api_key is not None and request.headers.get(API_KEY_HEADER) != self.api_key:
            return Response(error_body("ApiKey not exists"), status_code=401, media_type=_JSON)
        fault = self.chain.take_fault(path)
        if fault is not None:
            log.info("devchain.fault", path=path, kind=fault.kind.value)
            early = await self._play(fault)
            if early is not None:
                return early
        try:
            params = dict(request.query_params)
            if request.method == "POST":
                params.update(parse_body(await request.body()))
        except ParamError as exc:
            return Response(error_body(str(exc)), media_type=_JSON)
        kind = fault.kind if fault is not None else None
        behind = fault.behind if fault is not None and kind is FaultKind.STALE_HEAD else 0
        view = self.node.view(path, params, behind=behind, lagging=kind is FaultKind.LAGGING_INFOS)
        return Response(self.node.answer(path, params, view), media_type=_JSON)

    async def _play(self, fault: Fault) -> Response | None:
        """The answer a fault gives instead of the real one (None: answer, maybe altered)."""
        kind = fault.kind
        if kind is FaultKind.ERROR_BODY:
            return JSONResponse(faults.ERROR_BODY)
        if kind in (FaultKind.THROTTLE_429, FaultKind.THROTTLE_403):
            status = 429 if kind is FaultKind.THROTTLE_429 else 403
            return JSONResponse(faults.THROTTLE_BODY, status_code=status)
        if kind is FaultKind.PLAIN_TEXT:
            return PlainTextResponse(faults.LITE_NODE_TEXT)
        if kind is FaultKind.HTTP_500:
            return Response(faults.HTTP_500_TEXT, status_code=500, media_type="text/html")
        if kind is FaultKind.HTTP_503:
            return Response(faults.HTTP_503_TEXT, status_code=503, media_type="text/html")
        if kind is FaultKind.TIMEOUT:
            await self._hold(self.hang_s)
            return PlainTextResponse("Gateway Timeout", status_code=504)
        if kind is FaultKind.SLOW:
            await self._hold(self.slow_s)
        return None

    async def _hold(self, seconds: float) -> None:
        """Wait `seconds`, or less if the server is stopping."""
        assert self._closing is not None
        try:
            await asyncio.wait_for(self._closing.wait(), seconds)
        except TimeoutError:
            pass

    async def _mine_forever(self, interval_s: float) -> None:
        """A block at the start of each wall-clock slot, as TRON's producers make them (a
        block's timestamp is its slot, and it appears then, not up to a slot later); slots
        missed while the loop was busy are skipped, as TRON skips a missed slot, rather than
        mined in a burst."""
        slot = (time.time() // interval_s + 1) * interval_s
        while True:
            while (delay := slot - time.time()) > 0:
                await asyncio.sleep(delay)
            log.debug("devchain.mined", block=self.chain.mine_on_clock())
            slot = max(slot, time.time() // interval_s * interval_s) + interval_s


class _EmbeddedServer(uvicorn.Server):
    """uvicorn leaving SIGINT/SIGTERM to the process it is embedded in."""

    @contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class _RequestLog:
    """ASGI middleware appending (path, headers) of every request outside /_dev/."""

    def __init__(self, app: ASGIApp, into: list[tuple[str, dict[str, str]]]) -> None:
        self.app = app
        self.into = into

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope["path"].startswith("/_dev/"):
            headers: dict[str, str] = {
                k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]
            }
            self.into.append((scope["path"], headers))
        await self.app(scope, receive, send)
