"""What the worker takes on (slots per host) and what counts as an acknowledgement."""

from __future__ import annotations

import pytest

from watcher.callbacks.outbox import pick
from watcher.callbacks.sender import judge


def test_pick_fills_free_slots_oldest_first_within_each_hosts_limit() -> None:
    due = [(1, "slow:443"), (2, "slow:443"), (3, "slow:443"), (4, "fast:443"), (5, "fast:443")]
    assert pick(due, free=4, in_flight={}, per_host=2) == [1, 2, 4, 5]
    assert pick(due, free=4, in_flight={"slow:443": 2}, per_host=2) == [4, 5]
    assert pick(due, free=1, in_flight={}, per_host=2) == [1]
    assert pick(due, free=3, in_flight={"slow:443": 1, "fast:443": 2}, per_host=2) == [1]


@pytest.mark.parametrize(
    ("code", "body", "accepted"),
    [
        (200, b'{"received": true}', True),
        (200, b'{"received":true,"note":"ok"}', True),
        (200, b'{"received": "true"}', False),
        (200, b'{"received": 1}', False),
        (200, b"OK", False),
        (200, b"", False),
        (201, b'{"received": true}', False),
        (204, b"", False),
        (500, b'{"received": true}', False),
    ],
)
def test_only_http_200_with_received_true_acknowledges(
    code: int, body: bytes, accepted: bool
) -> None:
    assert (judge(code, body) is None) is accepted
