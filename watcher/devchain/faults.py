"""Node faults the devchain can play, as TRON.md describes them, and the queue that holds them.

    error_body     HTTP 200 with {"Error": "…"}: how java-tron answers nearly every failure
    throttle_429   TronGrid over its rate limit: 429 with the frequency-limit JSON
    throttle_403   the same limit answered with 403
    plain_text     HTTP 200, bare text: a lite full node refusing a history query
    http_500       500 from the servlet container
    http_503       503 from a load balancer with no healthy node behind it
    timeout        no answer for ~30 s (then a 504)
    slow           the right answer after ~2 s
    stale_head     the answer of a node N blocks behind (head, blocks above it missing)
    lagging_infos  transaction infos missing entries relative to the block's transactions

A fault applies to the next `count` chain requests (only those to `path` when given);
`lagging_infos` only ever applies to transaction-info-by-block requests.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class FaultKind(StrEnum):
    ERROR_BODY = "error_body"
    THROTTLE_429 = "throttle_429"
    THROTTLE_403 = "throttle_403"
    PLAIN_TEXT = "plain_text"
    HTTP_500 = "http_500"
    HTTP_503 = "http_503"
    TIMEOUT = "timeout"
    SLOW = "slow"
    STALE_HEAD = "stale_head"
    LAGGING_INFOS = "lagging_infos"


INFOS_PATHS = frozenset(
    {"/wallet/gettransactioninfobyblocknum", "/walletsolidity/gettransactioninfobyblocknum"}
)
ERROR_BODY = {
    "Error": "class org.tron.core.exception.BadItemException : lack of computing resources"
}
THROTTLE_BODY = {
    "Error": "The key exceeds the frequency limit(15), and the query server is suspended for 30s"
}
LITE_NODE_TEXT = "this API is closed because this node is a lite fullnode"
HTTP_500_TEXT = "<html><body><h2>HTTP ERROR 500 java.lang.NullPointerException</h2></body></html>"
HTTP_503_TEXT = "<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>"


@dataclass(slots=True)
class Fault:
    kind: FaultKind
    remaining: int
    path: str | None = None
    behind: int = 5  # stale_head: how many blocks behind the real head

    def applies_to(self, path: str) -> bool:
        if self.path is not None and self.path != path:
            return False
        return self.kind is not FaultKind.LAGGING_INFOS or path in INFOS_PATHS


class FaultQueue:
    """Faults in the order they were injected; each request takes the first that applies.

    Not locked by itself: the chain that owns it serializes access.
    """

    def __init__(self) -> None:
        self._faults: list[Fault] = []

    def add(self, kind: str, count: int, path: str | None, behind: int) -> None:
        if count < 1:
            raise ValueError("count must be at least 1")
        if behind < 1:
            raise ValueError("behind must be at least 1")
        self._faults.append(Fault(FaultKind(kind), count, path, behind))

    def take(self, path: str) -> Fault | None:
        """The fault this request gets, counted as used; None when it is answered normally."""
        for fault in self._faults:
            if fault.applies_to(path):
                fault.remaining -= 1
                if fault.remaining == 0:
                    self._faults.remove(fault)
                return Fault(fault.kind, 0, fault.path, fault.behind)
        return None

    def clear(self) -> None:
        self._faults.clear()

    def __len__(self) -> int:
        return sum(f.remaining for f in self._faults)
