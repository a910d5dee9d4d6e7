"""The API key cache: an entry lasts its time to live, and never outlives a change of keys
made in this process, even one that commits while its lookup is under way."""

from __future__ import annotations

from watcher.api.keycache import KeyCache
from watcher.merchants import AuthedKey

KEY = AuthedKey(merchant_id=1, key_id=7, sandbox=False)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Changes:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> int:
        return self.count


def _cache(ttl_s: float = 2.0, size: int = 4096) -> tuple[KeyCache, Clock, Changes]:
    clock, changes = Clock(), Changes()
    return KeyCache(ttl_s, size=size, monotonic=clock, changes=changes), clock, changes


def test_an_entry_lasts_its_ttl_counted_from_before_the_lookup() -> None:
    cache, clock, _ = _cache()
    mark = cache.mark()
    clock.now += 0.5  # the lookup took this long
    cache.put("d", KEY, mark)
    assert cache.get("d") == KEY
    clock.now += 1.4
    assert cache.get("d") == KEY
    clock.now += 0.1  # 2 s since the database was read
    assert cache.get("d") is None
    assert cache.get("other") is None


def test_a_change_of_keys_in_this_process_drops_every_entry_at_once() -> None:
    cache, _, changes = _cache()
    cache.put("d", KEY, cache.mark())
    changes.count += 1
    assert cache.get("d") is None
    cache.put("d", KEY, cache.mark())
    assert cache.get("d") == KEY


def test_a_lookup_that_raced_a_change_is_not_remembered() -> None:
    cache, _, changes = _cache()
    mark = cache.mark()
    changes.count += 1  # a rotation committed while the key was being looked up
    cache.put("d", KEY, mark)
    assert cache.get("d") is None


def test_zero_ttl_remembers_nothing_and_size_is_bounded() -> None:
    cache, _, _ = _cache(ttl_s=0)
    cache.put("d", KEY, cache.mark())
    assert cache.get("d") is None
    small, _, _ = _cache(size=2)
    for digest in ("a", "b", "c"):
        small.put(digest, KEY, small.mark())
    assert small.get("a") is None and small.get("b") == KEY and small.get("c") == KEY
