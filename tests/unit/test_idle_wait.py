"""follower.idle_wait_s: caught up, the head is asked for again when the next block is due."""

from __future__ import annotations

import pytest

from watcher.tron.follower import BLOCK_MS, FAST_POLL_S, idle_wait_s

HEAD_MS = 1_800_000_000_000


@pytest.mark.parametrize(
    ("now_ms", "poll_s", "wait_s"),
    [
        (HEAD_MS, 1.0, 1.0),  # the next block is 3 s away: a poll interval at most
        (HEAD_MS + 2_600, 1.0, 0.4),  # …or until it is due
        (HEAD_MS + BLOCK_MS, 1.0, FAST_POLL_S),  # due: asked for often
        (HEAD_MS + BLOCK_MS + 900, 1.0, FAST_POLL_S),
        (HEAD_MS + BLOCK_MS + 1_000, 1.0, 1.0),  # a poll interval late: the node stalls
        (HEAD_MS + BLOCK_MS + 60_000, 1.0, 1.0),
        (HEAD_MS + BLOCK_MS, 0.05, 0.05),  # never longer than the poll interval
        (HEAD_MS - 3_600_000, 0.5, 0.5),  # a node clock ahead of ours: the poll interval
    ],
)
def test_wait_until_the_next_block_is_due_then_poll_often(
    now_ms: int, poll_s: float, wait_s: float
) -> None:
    assert idle_wait_s(HEAD_MS, now_ms, poll_s) == pytest.approx(wait_s)
