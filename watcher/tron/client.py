"""A java-tron HTTP API client: the few calls the follower and `watcher chain` need.

    NodeError            a node did not give a usable answer; retry, maybe elsewhere
    ├── (HTTP 200 with {"Error": …}, plain text, 429/403/5xx, timeouts, refused connections,
    │    an empty {} for a block the node does not have yet, inconsistent answers)
    └── Unsupported      the node has no such servlet (404/405): use another call instead

java-tron answers nearly every failure with HTTP 200 and `{"Error": "…"}`, a lite full node
answers history queries with bare text, TronGrid throttles with 429/403: all of them are
node errors here, never data. Each request tries the endpoints in turn, starting with the
last one that answered (sticky, so consecutive calls see one node's view where possible);
after a full round of failures it waits a full-jitter backoff and tries another round,
then gives up with the last error. The follower retries the same block on top of that.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import msgspec
import structlog

from watcher.clock import Clock, now_ms
from watcher.config import TronSettings
from watcher.metrics import Metrics
from watcher.redact import HIDDEN, redact_url
from watcher.tron.decode import InfoView, decode_infos

log = structlog.get_logger("watcher.tron.client")

API_KEY_HEADER = "TRON-PRO-API-KEY"
# Node answers (a block's transaction infos are 150-400 KB on mainnet) are parsed by msgspec:
# about three times faster than the standard library, with every non-integer number a
# Decimal, never a float. A key repeated in one object: the last one wins (the operator's
# node, not a stranger; a repeated key must not stall the follower on a block for good).
_NODE_JSON = msgspec.json.Decoder(float_hook=Decimal)
_encode = msgspec.json.Encoder().encode
# An HTTP header value (RFC 9110 field-value): visible characters, inner spaces and tabs only.
_HEADER_VALUE = re.compile(r"[\x21-\x7e](?:[\x20-\x7e\t]*[\x21-\x7e])?")


def node_session() -> aiohttp.ClientSession:
    """The HTTP session TronClient talks through.

    aiohttp rather than httpx: the follower makes three requests per block, a few hundred a
    second while it catches up, and aiohttp spends about a fifth of httpx's CPU on each
    (bench/follower_replay.py). Timeouts are per request (tron.request_timeout_s). A proxy
    named by the environment (HTTP_PROXY, HTTPS_PROXY, NO_PROXY) is honoured as httpx does,
    but looked up once per endpoint (`env_proxy`): aiohttp's own `trust_env` reads the
    environment and ~/.netrc in a thread for every request.
    """
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=128))


def env_proxy(url: str) -> str | None:
    """The proxy the environment names for requests to `url`, if any."""
    parts = urlsplit(url)
    if not parts.hostname or urllib.request.proxy_bypass(parts.hostname):
        return None
    return urllib.request.getproxies().get(parts.scheme)


EMPTY_ROOT = "0" * 64
Sleep = Callable[[float], Awaitable[None]]
Decode = Callable[[bytes], Any]


class NodeError(Exception):
    """The TRON node did not give a usable answer."""


class Unsupported(NodeError):
    """The node does not serve this API."""


def full_jitter(attempt: int, base_s: float, cap_s: float, rng: random.Random) -> float:
    """Seconds to wait before retry `attempt` (0-based): uniform in [0, min(cap, base*2^n)]."""
    return rng.uniform(0, min(cap_s, base_s * 2 ** min(attempt, 30)))


@dataclass(frozen=True, slots=True)
class Header:
    number: int
    block_id: str
    parent_hash: str
    timestamp_ms: int
    tx_root: str
    txids: tuple[str, ...] | None = None  # when read from a whole block

    @property
    def empty(self) -> bool:
        """java-tron sets txTrieRoot to zeros for a block without transactions."""
        return self.tx_root == EMPTY_ROOT


@dataclass(frozen=True, slots=True)
class BlockShape:
    """A block's header and how many transactions it holds."""

    header: Header
    tx_count: int


@dataclass(frozen=True, slots=True)
class Heads:
    head: Header
    solid: int


@dataclass
class Endpoint:
    url: str
    name: str = ""  # what logs, metrics and the CLI show: no credentials (redact_url)
    proxy: str | None = field(default=None, repr=False)
    requests: int = 0
    errors: int = 0
    consecutive_errors: int = 0
    last_error: str = ""
    last_ok_ms: int | None = None
    last_error_ms: int | None = None

    @property
    def healthy(self) -> bool:
        return self.consecutive_errors == 0


def parse_header(data: Any, expect: int | None = None) -> Header:
    """A block header from a getblock / getblockbynum / getnowblock answer.

    Anything odd is a NodeError (retried), never read as data: an empty parentHash would look
    like a fork to the follower, a crash would stop it. java-tron omits fields holding their
    default value, so a missing number or timestamp is 0 (only the genesis block has those);
    the blockID's first 8 bytes are the number and must agree with it.
    """
    if not isinstance(data, dict) or not data.get("blockID"):
        raise NodeError("no block in the answer" + (f" for {expect}" if expect else ""))
    block_id = _hash(data["blockID"], "blockID")
    header = data.get("block_header")
    raw = header.get("raw_data") if isinstance(header, dict) else None
    if not isinstance(raw, dict):
        raise NodeError(f"block {block_id}: no block_header.raw_data")
    number = _uint(raw.get("number", 0), "number")
    if number != int(block_id[:16], 16):
        raise NodeError(f"block {block_id}: its header says number {number}")
    if expect is not None and number != expect:
        raise NodeError(f"asked for block {expect}, got {number}")
    timestamp = _uint(raw.get("timestamp", 0), "timestamp")
    if number and (not timestamp or "parentHash" not in raw):
        raise NodeError(f"block {number}: the header has no timestamp or parentHash")
    txs = data.get("transactions")
    txids = (
        tuple(str(t.get("txID", "")).lower() if isinstance(t, dict) else "" for t in txs)
        if isinstance(txs, list)
        else None
    )
    return Header(
        number=number,
        block_id=block_id,
        parent_hash=_hash(raw.get("parentHash", "0" * 64), "parentHash"),
        timestamp_ms=timestamp,
        tx_root=str(raw.get("txTrieRoot", "")).lower(),
        txids=txids,
    )


_HEX = frozenset("0123456789abcdef")


def _hash(value: object, what: str) -> str:
    text = str(value).lower().removeprefix("0x")
    if len(text) != 64 or not _HEX.issuperset(text):
        raise NodeError(f"{what} {_snippet(str(value))!r} is not 32 bytes of hex")
    return text


def _uint(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise NodeError(f"{what} {_snippet(str(value))!r} is not a non-negative integer")
    return value


def _node_num(text: object) -> int:
    """`Num:123,ID:…` (getnodeinfo) -> 123."""
    num = text[4:].split(",", 1)[0] if isinstance(text, str) and text.startswith("Num:") else ""
    if not (num.isascii() and num.isdigit()):
        raise NodeError(f"unexpected getnodeinfo block field {text!r}")
    return int(num)


class TronClient:
    def __init__(
        self,
        settings: TronSettings,
        http: aiohttp.ClientSession,
        *,
        metrics: Metrics | None = None,
        visible: bool = False,
        rounds: int = 2,
        backoff_base_s: float = 0.5,
        backoff_cap_s: float = 30.0,
        rng: random.Random | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = now_ms,
    ):
        self._settings = settings
        self._http = http
        self._metrics = metrics
        self.visible = visible
        self._rounds = max(1, rounds)
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self._rng = rng or random.Random()
        self._sleep = sleep
        self._clock = clock
        self.endpoints = [
            Endpoint(url, name, env_proxy(url)) for url, name in _names(settings.endpoints)
        ]
        self._current = 0
        self._timeout = aiohttp.ClientTimeout(total=settings.request_timeout_s)
        self._headers = {"Content-Type": "application/json"}
        if settings.api_key:
            self._headers[API_KEY_HEADER] = settings.api_key
        self._count_servlet = True

    def backoff(self, attempt: int) -> float:
        return full_jitter(attempt, self.backoff_base_s, self.backoff_cap_s, self._rng)

    # -- transport ---------------------------------------------------------------------

    async def call(
        self, path: str, body: dict[str, Any] | None = None, decode: Decode | None = None
    ) -> Any:
        """POST `body` to `path`, failing over between endpoints; the parsed JSON answer
        (`decode`: how, when not as plain JSON)."""
        payload = dict(body or {})
        payload.setdefault("visible", self.visible)
        last: NodeError = NodeError("no endpoint configured")
        for attempt in range(self._rounds):
            if attempt:
                await self._sleep(self.backoff(attempt - 1))
            for _ in range(len(self.endpoints)):
                endpoint = self.endpoints[self._current]
                try:
                    return await self._once(endpoint, path, payload, decode)
                except Unsupported:
                    raise
                except NodeError as exc:
                    last = exc
                    self._current = (self._current + 1) % len(self.endpoints)
        raise last

    async def _once(
        self, endpoint: Endpoint, path: str, payload: dict[str, Any], decode: Decode | None
    ) -> Any:
        endpoint.requests += 1
        started = time.perf_counter()
        try:
            data = await self._request(endpoint.url + path, payload, decode, endpoint.proxy)
        except Unsupported:
            self._observe(endpoint, started, ok=True)
            raise
        except NodeError as exc:
            self._failed(endpoint, path, exc)
            self._observe(endpoint, started, ok=False)
            raise
        endpoint.consecutive_errors = 0
        endpoint.last_ok_ms = self._clock()
        self._observe(endpoint, started, ok=True)
        return data

    async def _request(
        self,
        url: str,
        payload: dict[str, Any],
        decode: Decode | None = None,
        proxy: str | None = None,
    ) -> Any:
        status, content = await self._post(url, _encode(payload), proxy)
        if status in (404, 405):
            raise Unsupported(f"HTTP {status}: the node does not serve this API")
        if status != 200:
            raise NodeError(f"HTTP {status}: {_snippet(_text(content))}")
        try:
            data = (decode or _NODE_JSON.decode)(content)
        except msgspec.DecodeError as exc:
            raise NodeError(f"not JSON: {_snippet(_text(content))}") from exc
        if isinstance(data, dict) and "Error" in data:
            raise NodeError(f"node error: {_snippet(str(data['Error']))}")
        return data

    async def _post(self, url: str, body: bytes, proxy: str | None) -> tuple[int, bytes]:
        timeout_s = self._settings.request_timeout_s
        if self._settings.api_key and not _HEADER_VALUE.fullmatch(self._settings.api_key):
            # Named, never quoted: the value is the key.
            raise NodeError(
                "the request cannot be sent: a header value is not valid HTTP (is there a "
                "space or line break in tron.api_key?)"
            )
        try:
            async with self._http.post(
                url,
                data=body,
                headers=self._headers,
                timeout=self._timeout,
                allow_redirects=False,
                proxy=proxy,
            ) as resp:
                return resp.status, await resp.read()
        except TimeoutError as exc:
            raise NodeError(f"timed out after {timeout_s}s") from exc
        except (aiohttp.ClientError, ValueError) as exc:
            # Messages name host and port at most; the URL's userinfo, path and query (where
            # hosted nodes put keys) are never part of them, but make sure.
            raise NodeError(_scrub(f"{type(exc).__name__}: {exc}", url)) from exc

    def _failed(self, endpoint: Endpoint, path: str, exc: NodeError) -> None:
        endpoint.errors += 1
        endpoint.consecutive_errors += 1
        endpoint.last_error = str(exc)
        endpoint.last_error_ms = self._clock()
        log.warning("tron.node_error", endpoint=endpoint.name, path=path, error=str(exc))

    def _observe(self, endpoint: Endpoint, started: float, *, ok: bool) -> None:
        if self._metrics is not None:
            self._metrics.node_request(endpoint.name, time.perf_counter() - started, ok=ok)

    # -- heads -------------------------------------------------------------------------

    async def head(self) -> Header:
        """The head block's header (cheap: no transactions)."""
        try:
            return parse_header(await self.call("/wallet/getblock", {"detail": False}))
        except Unsupported:
            return parse_header(await self.call("/wallet/getnowblock"))

    async def solid_number(self) -> int:
        """The solidified head, from its header, or from getnodeinfo on older nodes."""
        try:
            data = await self.call("/walletsolidity/getblock", {"detail": False})
            return parse_header(data).number
        except Unsupported:
            return _node_num((await self.node_info()).get("solidityBlock"))

    async def heads(self, known: Heads | None = None) -> Heads:
        """Head and final height. With `known`, an unchanged head costs one request: the
        final height only moves when the head does."""
        head = await self.head()
        if known is not None and known.head.block_id == head.block_id:
            return known
        finality = self._settings.finality
        if isinstance(finality, int):
            return Heads(head, max(0, head.number - finality))
        return Heads(head, min(await self.solid_number(), head.number))

    async def node_info(self) -> dict[str, Any]:
        data = await self.call("/wallet/getnodeinfo")
        if not isinstance(data, dict):
            raise NodeError("getnodeinfo did not answer an object")
        return data

    # -- blocks ------------------------------------------------------------------------

    async def header(self, number: int) -> Header:
        body = {"id_or_num": str(number), "detail": False}
        try:
            return parse_header(await self.call("/wallet/getblock", body), number)
        except Unsupported:
            return await self.whole_block(number)

    async def whole_block(self, number: int) -> Header:
        """The header with the block's txids (getblockbynum: heavy, all transactions)."""
        header = parse_header(await self.call("/wallet/getblockbynum", {"num": number}), number)
        return header if header.txids is not None else _with_txids(header, ())

    async def tx_count(self, number: int) -> int:
        data = await self.call("/wallet/gettransactioncountbyblocknum", {"num": number})
        count = data.get("count") if isinstance(data, dict) else None
        if isinstance(count, str) and count.isascii() and count.isdigit():  # int64 as text
            count = int(count)
        if not isinstance(count, int) or isinstance(count, bool):
            raise NodeError(f"gettransactioncountbyblocknum answered {_snippet(str(data))}")
        return count

    async def block(self, number: int) -> tuple[BlockShape, list[InfoView | None]]:
        """Header, transaction count and transaction infos of block `number`, asked at once.

        The header says whether the block is empty (txTrieRoot zeros). For the count,
        java-tron has `gettransactioncountbyblocknum`; a node without it (404) costs a whole
        block (getblockbynum), which also gives the txids. A node that has not got the block
        answers a count of 0 and no infos: with a non-empty root that is a lagging node,
        retried. The caller checks the infos against the shape (follower.check_infos).
        """
        if self._count_servlet:
            try:
                header, count, infos = await _gather(
                    self.header(number), self.tx_count(number), self.infos(number)
                )
            except Unsupported:
                log.info("tron.count_servlet_missing", fallback="/wallet/getblockbynum")
                self._count_servlet = False
            else:
                if header.txids is not None:
                    count = len(header.txids)
                elif count == 0 and not header.empty:
                    raise NodeError(f"block {number} has transactions but the node counts none")
                return BlockShape(header, count), infos
        whole, infos = await _gather(self.whole_block(number), self.infos(number))
        return BlockShape(whole, len(whole.txids or ())), infos

    async def infos(self, number: int) -> list[InfoView | None]:
        """The block's transaction infos, as views of the fields the follower reads."""
        path = "/wallet/gettransactioninfobyblocknum"
        data = await self.call(path, {"num": number}, decode_infos)
        if not isinstance(data, list):
            raise NodeError(f"transaction infos of block {number} are not a list")
        return data

    # -- single transactions -----------------------------------------------------------

    async def transaction_info(self, txid: str) -> dict[str, Any] | None:
        data = await self.call("/wallet/gettransactioninfobyid", {"value": txid})
        return data if isinstance(data, dict) and data else None

    # -- health ------------------------------------------------------------------------

    async def probe(self) -> list[dict[str, object]]:
        """Ask each endpoint for its head now: what `watcher chain status` shows."""
        return list(await asyncio.gather(*(self._probe(e) for e in self.endpoints)))

    async def _probe(self, endpoint: Endpoint) -> dict[str, object]:
        started = time.perf_counter()
        try:
            url = endpoint.url + "/wallet/getblock"
            data = await self._request(url, {"detail": False}, proxy=endpoint.proxy)
            head: int | None = parse_header(data).number
            error = None
        except NodeError as exc:
            head, error = None, str(exc)
        return {
            "url": endpoint.name,
            "ok": error is None,
            "head": head,
            "latencyMs": round((time.perf_counter() - started) * 1000, 1),
            "error": error,
        }


def _names(urls: list[str]) -> list[tuple[str, str]]:
    """Each URL with its shown name; endpoints that only differ in hidden parts get `#n`."""
    names = [redact_url(u) for u in urls]
    return [
        (url, name if names.count(name) == 1 else f"{name} #{i + 1}")
        for i, (url, name) in enumerate(zip(urls, names, strict=True))
    ]


async def _gather(*aws: Awaitable[Any]) -> Any:
    """All results, or the first error once every request has finished (none left dangling)."""
    results = await asyncio.gather(*aws, return_exceptions=True)
    for r in results:
        if isinstance(r, BaseException):
            raise r
    return results


def _with_txids(header: Header, txids: tuple[str, ...]) -> Header:
    return Header(
        header.number,
        header.block_id,
        header.parent_hash,
        header.timestamp_ms,
        header.tx_root,
        txids,
    )


def _text(content: bytes) -> str:
    return content[:4096].decode("utf-8", "replace")


def _scrub(message: str, url: str) -> str:
    """`message` without the parts of `url` that redact_url hides."""
    shown = redact_url(url)
    message = message.replace(url, shown)
    parts = urlsplit(url)
    for secret in (parts.username, parts.password, parts.path.strip("/"), parts.query):
        if secret:
            message = message.replace(secret, HIDDEN)
    return message


def _snippet(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"
