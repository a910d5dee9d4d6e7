"""API keys that authenticated in the last seconds, so a busy merchant's requests do not each
look their key up.

An entry lasts `ttl_s` (api.key_cache_s) and only while this process has not changed any key
since the lookup that made it (watcher.merchants.key_changes): a key rotated or a merchant
disabled in this process is refused at once; done in another process (`watcher merchant
rotate-key|disable`), within `ttl_s`. Only keys that authenticated are kept; a wrong key is
looked up (or refused by WrongKeys) each time.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from watcher.merchants import AuthedKey, key_changes


class KeyCache:
    def __init__(
        self,
        ttl_s: float,
        size: int = 4096,
        monotonic: Callable[[], float] = time.monotonic,
        changes: Callable[[], int] = key_changes,
    ):
        self._ttl_s = ttl_s
        self._size = size
        self._monotonic = monotonic
        self._changes = changes
        self._entries: OrderedDict[str, tuple[AuthedKey, float, int]] = OrderedDict()

    def mark(self) -> tuple[int, float]:
        """Taken before a lookup, handed to put() with its result: the entry's age counts
        from the moment before the database was read."""
        return self._changes(), self._monotonic()

    def get(self, digest: str) -> AuthedKey | None:
        entry = self._entries.get(digest)
        if entry is None:
            return None
        authed, at, changes = entry
        if self._monotonic() - at >= self._ttl_s or changes != self._changes():
            del self._entries[digest]
            return None
        return authed

    def put(self, digest: str, authed: AuthedKey, mark: tuple[int, float]) -> None:
        changes, at = mark
        if self._ttl_s <= 0 or changes != self._changes():
            return
        self._entries[digest] = (authed, at, changes)
        self._entries.move_to_end(digest)
        if len(self._entries) > self._size:
            self._entries.popitem(last=False)
