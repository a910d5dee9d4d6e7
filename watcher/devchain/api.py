"""The java-tron HTTP API over a DevChain: one function per servlet, all answering bytes.

Parameters come from the query string (GET) and the JSON body (POST), as java-tron reads
them. Bad parameters get java-tron's answer to everything: HTTP 200 and `{"Error": "…"}`.
The `/walletsolidity/` family answers the same questions about the solidified chain only;
a `View` says how far up the chain an answer may look, which is also how a stale node is
played.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from watcher.devchain import render
from watcher.devchain.blocks import Block, Tx
from watcher.devchain.chain import DevChain

Params = dict[str, Any]
EMPTY_OBJECT = b"{}"
EMPTY_LIST = b"[]"
LIMIT_NEXT_MAX = 100


class ParamError(ValueError):
    """A parameter java-tron could not parse; its text goes into the `Error` body."""


@dataclass(frozen=True, slots=True)
class View:
    head: int  # the head this node reports
    solid: int  # the solidified head it reports
    limit: int  # the highest block this answer may show: head, or solid for /walletsolidity
    visible: bool
    lagging_infos: bool = False


def error_body(message: str) -> bytes:
    return render.dumps({"Error": message})


def parse_body(raw: bytes) -> Params:
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise ParamError(f"class com.alibaba.fastjson.JSONException : {exc}") from exc
    if not isinstance(body, dict):
        raise ParamError("class com.alibaba.fastjson.JSONException : not a JSON object")
    return body


def is_visible(params: Params) -> bool:
    value = params.get("visible", False)
    return value is True or (isinstance(value, str) and value.lower() == "true")


def int_param(params: Params, key: str, default: int | None = None) -> int:
    value = params.get(key, default)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    raise ParamError(f'class java.lang.NumberFormatException : For input string: "{value}"')


def str_param(params: Params, key: str) -> str:
    value = params.get(key)
    if not isinstance(value, str) or not value:
        raise ParamError(f"class java.lang.IllegalArgumentException : {key} is required")
    return value.lower()


class NodeApi:
    """The servlets, keyed by their path under /wallet/ and /walletsolidity/."""

    def __init__(self, chain: DevChain) -> None:
        self.chain = chain
        self.handlers: dict[str, Callable[[Params, View], bytes]] = {
            "getnowblock": self.getnowblock,
            "getblock": self.getblock,
            "getblockbynum": self.getblockbynum,
            "getblockbyid": self.getblockbyid,
            "getblockbylimitnext": self.getblockbylimitnext,
            "getblockbylatestnum": self.getblockbylatestnum,
            "gettransactioncountbyblocknum": self.gettransactioncountbyblocknum,
            "gettransactioninfobyblocknum": self.gettransactioninfobyblocknum,
            "gettransactioninfobyid": self.gettransactioninfobyid,
            "gettransactionbyid": self.gettransactionbyid,
            "getnodeinfo": self.getnodeinfo,
        }

    def paths(self) -> list[str]:
        return [
            f"/{family}/{name}" for family in ("wallet", "walletsolidity") for name in self.handlers
        ]

    def answer(self, path: str, params: Params, view: View) -> bytes:
        handler = self.handlers[path.rsplit("/", 1)[1]]
        try:
            return handler(params, view)
        except ParamError as exc:
            return error_body(str(exc))

    def view(self, path: str, params: Params, *, behind: int = 0, lagging: bool = False) -> View:
        chain = self.chain
        head, solid = chain.heights()
        if behind:
            head = max(chain.first_number, head - behind)
            solid = min(solid, head)
        limit = solid if path.startswith("/walletsolidity/") else head
        return View(head, solid, limit, is_visible(params), lagging)

    # -- blocks --------------------------------------------------------------------------

    def getnowblock(self, params: Params, view: View) -> bytes:
        return self._block_body(self.chain.block(view.limit), view, "block")

    def getblock(self, params: Params, view: View) -> bytes:
        detail = params.get("detail", False)
        kind = "block" if detail is True or str(detail).lower() == "true" else "header"
        id_or_num = params.get("id_or_num")
        if id_or_num is None or id_or_num == "":
            return self._block_body(self.chain.block(view.limit), view, kind)
        text = str(id_or_num)
        if len(text) == 64:
            return self._block_body(self.chain.block_by_id(text), view, kind)
        return self._block_body(self._at(int_param(params, "id_or_num"), view), view, kind)

    def getblockbynum(self, params: Params, view: View) -> bytes:
        return self._block_body(self._at(int_param(params, "num", 0), view), view, "block")

    def getblockbyid(self, params: Params, view: View) -> bytes:
        return self._block_body(self.chain.block_by_id(str_param(params, "value")), view, "block")

    def getblockbylimitnext(self, params: Params, view: View) -> bytes:
        start, end = int_param(params, "startNum", 0), int_param(params, "endNum", 0)
        if not 0 <= start < end or end - start > LIMIT_NEXT_MAX:
            return EMPTY_OBJECT
        return self._block_list(range(start, min(end, view.limit + 1)), view)

    def getblockbylatestnum(self, params: Params, view: View) -> bytes:
        n = int_param(params, "num", 0)
        if not 0 < n <= LIMIT_NEXT_MAX:
            return EMPTY_OBJECT
        return self._block_list(range(view.limit - n + 1, view.limit + 1), view)

    # -- transactions --------------------------------------------------------------------

    def gettransactioncountbyblocknum(self, params: Params, view: View) -> bytes:
        """`{"count": n}`; 0 for a block the node does not have, as java-tron answers."""
        blk = self._at(int_param(params, "num", 0), view)
        return render.dumps({"count": len(blk.txs) if blk is not None else 0})

    def gettransactioninfobyblocknum(self, params: Params, view: View) -> bytes:
        blk = self._at(int_param(params, "num", 0), view)
        if blk is None or not blk.txs:
            return EMPTY_LIST
        if view.lagging_infos:
            return render.dumps(render.infos(blk, view.visible)[: len(blk.txs) // 2])
        return render.cached(blk, "infos", view.visible)

    def gettransactioninfobyid(self, params: Params, view: View) -> bytes:
        found = self._tx(params, view)
        if found is None:
            return EMPTY_OBJECT
        return render.dumps(render.info(found[0], found[1], view.visible))

    def gettransactionbyid(self, params: Params, view: View) -> bytes:
        found = self._tx(params, view)
        if found is None:
            return EMPTY_OBJECT
        return render.dumps(render.transaction(found[0], found[1], view.visible))

    def getnodeinfo(self, params: Params, view: View) -> bytes:
        head, solid = self.chain.block(view.head), self.chain.block(view.solid)
        assert head is not None and solid is not None
        return render.dumps(render.node_info(head, solid, self.chain.first_number))

    # -- helpers -------------------------------------------------------------------------

    def _at(self, number: int, view: View) -> Block | None:
        return self.chain.block(number) if number <= view.limit else None

    def _tx(self, params: Params, view: View) -> tuple[Tx, Block] | None:
        located = self.chain.find(str_param(params, "value"))
        if located is None or located.block is None or located.block.number > view.limit:
            return None
        return located.tx, located.block

    def _block_body(self, blk: Block | None, view: View, kind: str) -> bytes:
        if blk is None or blk.number > view.limit:
            return EMPTY_OBJECT
        return render.cached(blk, kind, view.visible)

    def _block_list(self, numbers: range, view: View) -> bytes:
        blocks = [b for b in map(self.chain.block, numbers) if b is not None]
        if not blocks:
            return EMPTY_OBJECT
        bodies = b",".join(render.cached(b, "block", view.visible) for b in blocks)
        return b'{"block":[' + bodies + b"]}"
