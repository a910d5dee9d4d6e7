"""Retry policy: plain data in, a decision out. Persisting the decision is the worker's job.

`callbacks.backoff_s` lists the seconds before attempts 2..max_attempts; a shorter list repeats
its last value. The default schedule (1 min, 10 min, 1 h, 6 h) spans hours because merchant
outages do.

Jitter spreads the retries of many callbacks that failed together (a merchant outage fails
them all at once). It is "equal jitter": each wait is drawn from [base/2, base], not "full
jitter" [0, base]. Full jitter would let the whole 7-hour default schedule collapse into
minutes for an unlucky callback, which is exactly the give-up-too-early failure the schedule
exists to prevent; half the schedule is always kept.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

DELIVERED: Literal["delivered"] = "delivered"
PENDING: Literal["pending"] = "pending"
DEAD: Literal["dead"] = "dead"

Status = Literal["delivered", "pending", "dead"]
Uniform = Callable[[float, float], float]


@dataclass(frozen=True)
class Decision:
    """What to store after an attempt: the new status and, when pending, the next due time."""

    status: Status
    next_attempt_ms: int | None = None


def base_delay_s(next_attempt: int, schedule: Sequence[float]) -> float:
    """Seconds before attempt `next_attempt` (2..): schedule[n-2], the last value repeated."""
    if next_attempt < 2:
        return 0.0
    return schedule[min(next_attempt - 2, len(schedule) - 1)]


def jittered_ms(base_s: float, uniform: Uniform) -> int:
    """A wait drawn from [base/2, base], in whole milliseconds."""
    return round(uniform(base_s / 2, base_s) * 1000)


def decide(
    attempts_made: int,
    delivered: bool,
    now_ms: int,
    *,
    max_attempts: int,
    schedule: Sequence[float],
    uniform: Uniform = random.uniform,
) -> Decision:
    """The outcome of the attempt numbered `attempts_made` (1-based)."""
    if delivered:
        return Decision(DELIVERED)
    if attempts_made >= max_attempts:
        return Decision(DEAD)
    wait = jittered_ms(base_delay_s(attempts_made + 1, schedule), uniform)
    return Decision(PENDING, now_ms + wait)
