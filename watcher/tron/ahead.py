"""Blocks fetched ahead of the follower: a bounded window of concurrent fetches, taken in order.

The follower asks for block n; while it stores n, blocks n+1 … n+window-1 (never above the
limit it gives: the node's head) are already on their way, at most `in_flight` of them being
fetched at once (what the node sees), the others fetched and waiting. This only hides the node's
latency: which block comes next is still the follower's decision, by number, so a block is
never skipped, and a block fetched before a fork may be stale — the follower checks every
block's parent as before, and forgets what was fetched above a height it steps back from.

A fetch that failed is not retried here: the error is raised to the caller when it takes that
block (the follower backs off and asks again, which starts a new fetch).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class FetchAhead(Generic[T]):
    def __init__(
        self, fetch: Callable[[int], Coroutine[Any, Any, T]], window: int, in_flight: int
    ) -> None:
        if window < 1 or in_flight < 1:
            raise ValueError("the window and the fetches in flight are at least one block")
        self._fetch = fetch
        self.window = window
        self._slots = asyncio.Semaphore(in_flight)
        self._tasks: dict[int, asyncio.Task[T]] = {}

    async def take(self, number: int, limit: int) -> T:
        """Block `number`, waiting for it; fetches of the next ones up to `limit` keep going."""
        self._forget_below(number)
        self._start(number, limit)
        task = self._tasks[number]
        try:
            return await asyncio.shield(task)
        finally:
            if task.done():
                del self._tasks[number]

    def ready(self, number: int) -> bool:
        """Whether block `number` has been fetched and can be taken without waiting."""
        task = self._tasks.get(number)
        return task is not None and task.done() and not task.cancelled() and not task.exception()

    def take_ready(self, number: int) -> T:
        """A block that `ready` said is there."""
        return self._tasks.pop(number).result()

    def forget_from(self, number: int) -> None:
        """Drop blocks at and above `number`: fetched before a fork, or no longer wanted."""
        for n in [n for n in self._tasks if n >= number]:
            self._tasks.pop(n).cancel()

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task

    @property
    def in_flight(self) -> int:
        return sum(not t.done() for t in self._tasks.values())

    def _start(self, number: int, limit: int) -> None:
        for n in range(number, max(number, min(limit, number + self.window - 1)) + 1):
            if n not in self._tasks:
                task = asyncio.create_task(self._fetch_one(n), name=f"fetch-block-{n}")
                task.add_done_callback(_quiet)
                self._tasks[n] = task

    async def _fetch_one(self, number: int) -> T:
        async with self._slots:
            return await self._fetch(number)

    def _forget_below(self, number: int) -> None:
        for n in [n for n in self._tasks if n < number]:
            self._tasks.pop(n).cancel()


def _quiet(task: asyncio.Task[object]) -> None:
    """A prefetch that failed and is never taken must not log 'exception never retrieved'."""
    if not task.cancelled():
        task.exception()
