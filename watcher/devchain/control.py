"""The devchain's control API under /_dev/, so other processes (the demo, e2e tests) can
drive the chain: queue transfers, mine, fork, inject faults, read the state.

Every route takes a JSON body (POST) and answers JSON; amounts are integer micro-USDT.
A refused or malformed request gets 400 (409 for a fork reaching a solidified block) with
`{"error": "…"}`.

    POST /_dev/transfer  {"to", "amount", "sender"?, "token"?, "result"?, "via_contract"?,
                          "mine"?: n}                          -> {"txid", "head"}
    POST /_dev/batch     {"transfers": [[to, amount], …], "via_contract"?, "sender"?,
                          "mine"?: n}                          -> {"txid", "head"}
    POST /_dev/filler    {"n"}                                 -> {"pending"}
    POST /_dev/mine      {"n"?: 1}                             -> {"blocks": […], "head"}
    POST /_dev/fork      {"depth", "drop"?: [txid…], "move"?: true} -> state
    POST /_dev/fault     {"kind", "count"?: 1, "path"?, "behind"?: 5} -> state
    GET|POST /_dev/state                                       -> state
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from watcher.devchain.chain import DevChain, ForkRefused

Body = dict[str, Any]


class ControlApi:
    def __init__(self, chain: DevChain) -> None:
        self.chain = chain

    def routes(self) -> list[BaseRoute]:
        post = ["POST"]
        return [
            Route("/_dev/transfer", self._wrap(self.transfer), methods=post),
            Route("/_dev/batch", self._wrap(self.batch), methods=post),
            Route("/_dev/filler", self._wrap(self.filler), methods=post),
            Route("/_dev/mine", self._wrap(self.mine), methods=post),
            Route("/_dev/fork", self._wrap(self.fork), methods=post),
            Route("/_dev/fault", self._wrap(self.fault), methods=post),
            Route("/_dev/state", self._wrap(lambda _: self.state()), methods=["GET", "POST"]),
        ]

    def state(self) -> Body:
        chain = self.chain
        head, solid = chain.head(), chain.solid()
        return {
            "head": head.number,
            "head_id": head.block_id,
            "head_timestamp": head.timestamp,
            "solid": solid.number,
            "solid_id": solid.block_id,
            "first": chain.first_number,
            "pending": chain.pending_count,
            "faults_queued": chain.faults_queued,
            "usdt_contract": chain.usdt_contract,
        }

    def transfer(self, body: Body) -> Body:
        txid = self.chain.transfer(
            _str(body, "to"),
            _int(body, "amount"),
            sender=body.get("sender"),
            token=body.get("token"),
            result=body.get("result", "SUCCESS"),
            via_contract=body.get("via_contract"),
        )
        return {"txid": txid, "head": self._mine(body)}

    def batch(self, body: Body) -> Body:
        items = body.get("transfers")
        if not isinstance(items, list):
            raise ValueError("transfers must be a list of [to, amount]")
        transfers = [_pair(item) for item in items]
        txid = self.chain.batch_transfer(
            transfers, via_contract=body.get("via_contract"), sender=body.get("sender")
        )
        return {"txid": txid, "head": self._mine(body)}

    def filler(self, body: Body) -> Body:
        self.chain.add_filler(_int(body, "n"))
        return {"pending": self.chain.pending_count}

    def mine(self, body: Body) -> Body:
        blocks = self.chain.mine(_int(body, "n", 1))
        return {"blocks": blocks, "head": self.chain.head_number}

    def fork(self, body: Body) -> Body:
        drop = body.get("drop") or []
        if not isinstance(drop, list) or not all(isinstance(t, str) for t in drop):
            raise ValueError("drop must be a list of txids")
        self.chain.fork(_int(body, "depth"), drop=set(drop), move=bool(body.get("move", True)))
        return self.state()

    def fault(self, body: Body) -> Body:
        self.chain.inject_fault(
            _str(body, "kind"),
            _int(body, "count", 1),
            path=body.get("path"),
            behind=_int(body, "behind", 5),
        )
        return self.state()

    def _mine(self, body: Body) -> int:
        n = _int(body, "mine", 0)
        if n:
            self.chain.mine(n)
        return self.chain.head_number

    @staticmethod
    def _wrap(fn: Callable[[Body], Body]) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                raw = await request.body()
                body = json.loads(raw) if raw.strip() else {}
                if not isinstance(body, dict):
                    raise ValueError("the body must be a JSON object")
                return JSONResponse(fn(body))
            except ForkRefused as exc:
                return JSONResponse({"error": str(exc)}, status_code=409)
            except (ValueError, TypeError) as exc:  # InvalidAddress is a ValueError
                return JSONResponse({"error": str(exc)}, status_code=400)

        return endpoint


def _int(body: Body, key: str, default: int | None = None) -> int:
    value = body.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{key} must be an integer")
    return value


def _str(body: Body, key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{key} is required")
    return value


def _pair(item: Any) -> tuple[str, int]:
    if isinstance(item, dict):
        item = [item.get("to"), item.get("amount")]
    if not isinstance(item, list | tuple) or len(item) != 2:
        raise ValueError("each transfer is [to, amount] or {to, amount}")
    to, amount = item
    if not isinstance(to, str) or not isinstance(amount, int) or isinstance(amount, bool):
        raise ValueError("each transfer is [to, amount] or {to, amount}")
    return to, amount
