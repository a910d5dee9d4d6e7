"""The event loop every process runs on: uvloop where it is installed, else asyncio's own.

uvloop's loop and sockets cost a fraction of the pure-Python ones per request: the API, the
follower's node requests and the database drivers all run on it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

try:
    import uvloop
except ImportError:  # a platform without it (Windows): asyncio's loop works the same
    uvloop = None  # type: ignore[assignment]


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    return uvloop.new_event_loop if uvloop is not None else None


def run(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run on the fastest loop available."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(coro)
