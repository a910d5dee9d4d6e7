"""The event loop every process runs on: uvloop where it is installed, else asyncio's own.

uvloop's loop and sockets cost a fraction of the pure-Python ones per request: the API, the
follower's node requests and the database drivers all run on it.

Before a process's first loop starts, what it has made so far (modules, classes, functions:
~150 000 objects once everything is imported) is moved out of the garbage collector's view
(`gc.freeze`): it lives as long as the process, and every full collection walked all of it.
The follower allocates fast while it catches up and triggered one every ~50 blocks, ~100 ms
each: about 2 ms of CPU per block of its ~8 (bench/follower_replay.py). Only the first run
freezes: a process that runs several loops (tests invoking commands in-process) would
otherwise freeze each run's leftovers, cycles included, for good. API processes forked
after the first loop (api.processes) inherit the frozen objects as they are, and their
collections leave those pages alone.
"""

from __future__ import annotations

import asyncio
import functools
import gc
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
    _freeze_once()
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(coro)


@functools.cache
def _freeze_once() -> None:
    gc.freeze()
