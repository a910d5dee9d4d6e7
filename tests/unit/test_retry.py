"""The retry policy: schedule, jitter bounds, dead after the last attempt."""

from __future__ import annotations

from watcher.callbacks.retry import Decision, Uniform, base_delay_s, decide
from watcher.config import CallbackSettings

NOW = 1_000_000


def _low(low: float, _high: float) -> float:
    return low


def _high(_low: float, high: float) -> float:
    return high


def test_default_schedule_spans_hours_before_a_callback_is_dead() -> None:
    cfg = CallbackSettings()
    waits = [base_delay_s(n, cfg.backoff_s) for n in range(2, cfg.max_attempts + 1)]
    assert cfg.max_attempts == 5 and waits == [60, 600, 3600, 21600]
    shortest = sum(w / 2 for w in waits)  # every wait drawn at the bottom of its jitter range
    assert shortest >= 3 * 3600


def test_a_shorter_schedule_repeats_its_last_value() -> None:
    assert [base_delay_s(n, [5, 30]) for n in range(1, 6)] == [0, 5, 30, 30, 30]


def _failed(attempt: int, uniform: Uniform) -> Decision:
    return decide(attempt, False, NOW, max_attempts=5, schedule=[60, 600], uniform=uniform)


def test_jitter_stays_within_half_to_full_wait() -> None:
    assert _failed(1, _low) == Decision("pending", NOW + 30_000)
    assert _failed(1, _high) == Decision("pending", NOW + 60_000)
    assert _failed(2, _high) == Decision("pending", NOW + 600_000)
    assert _failed(4, _low) == Decision("pending", NOW + 300_000)


def test_spread_of_many_failures_is_real_with_the_default_random_source() -> None:
    dues = {
        decide(1, False, NOW, max_attempts=5, schedule=[600]).next_attempt_ms for _ in range(50)
    }
    assert len(dues) > 40
    assert all(d is not None and NOW + 300_000 <= d <= NOW + 600_000 for d in dues)


def test_delivered_and_dead() -> None:
    assert decide(3, True, NOW, max_attempts=5, schedule=[1]) == Decision("delivered")
    assert decide(5, False, NOW, max_attempts=5, schedule=[1]) == Decision("dead")
    assert decide(1, False, NOW, max_attempts=1, schedule=[1]) == Decision("dead")
    assert decide(4, False, NOW, max_attempts=5, schedule=[1]).status == "pending"
