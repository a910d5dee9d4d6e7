"""A mark that comes after the callback's lease passed to another worker, on SQLite and
PostgreSQL: the attempt is always stored, the row is left to the lease holder, and only a
delivery is recorded on it regardless (delivered is a fact)."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.support.callbacks import add_events, attempt_rows, callback_rows, new_merchant
from watcher.callbacks import retry
from watcher.callbacks.outbox import Job, Mark, Outbox
from watcher.clock import now_ms
from watcher.secrets import load_box

LEASE_MS = 1_000


def outcome(job: Job, started_ms: int, code: int | None) -> Mark:
    delivered = code == 200
    decision = retry.decide(
        job.attempt, delivered, started_ms + 5, max_attempts=5, schedule=[60], uniform=max
    )
    error = None if delivered else ("HTTP 500" if code else "timed out after 10s")
    return Mark(job, started_ms, 5, code, error, decision)


@pytest.fixture
async def two_workers(
    db_url: str, sessions: async_sessionmaker[AsyncSession]
) -> tuple[Outbox, Outbox, Job, Job, int]:
    """Worker a claimed the callback, its lease ran out, worker b claimed it again."""
    box = load_box(db_url)
    merchant = await new_merchant(sessions, box)
    t0 = now_ms()
    await add_events(sessions, merchant.id, "http://127.0.0.1:9/hook", t0, 1)
    a, b = (Outbox(sessions, box, name, LEASE_MS) for name in ("a", "b"))
    [job_a], _ = await a.claim(t0, 4, {}, 4)
    later = t0 + LEASE_MS + 1
    [job_b], _ = await b.claim(later, 4, {}, 4)
    return a, b, job_a, job_b, later


async def test_a_failed_attempt_after_the_lease_passed_leaves_the_row_to_its_holder(
    sessions: async_sessionmaker[AsyncSession], two_workers: tuple[Outbox, Outbox, Job, Job, int]
) -> None:
    a, b, job_a, job_b, later = two_workers
    assert await a.mark([outcome(job_a, later, 500)]) == [False]  # the lease was lost
    [row] = await callback_rows(sessions)
    assert (row.status, row.attempts, row.locked_by, row.last_error) == ("pending", 0, "b", None)

    assert await b.mark([outcome(job_b, later, None)]) == [True]
    [row] = await callback_rows(sessions)
    assert (row.status, row.attempts, row.locked_by) == ("pending", 1, None)
    assert (row.last_status_code, row.last_error) == (None, "timed out after 10s")
    assert row.next_attempt_ms == later + 5 + 60_000
    attempts = [(x.attempt, x.worker, x.status_code) for x in await attempt_rows(sessions)]
    assert attempts == [(1, "a", 500), (1, "b", None)]


async def test_a_delivery_after_the_lease_passed_is_recorded_and_stays(
    sessions: async_sessionmaker[AsyncSession], two_workers: tuple[Outbox, Outbox, Job, Job, int]
) -> None:
    a, b, job_a, job_b, later = two_workers
    assert await a.mark([outcome(job_a, later, 200)]) == [False]
    [row] = await callback_rows(sessions)
    assert (row.status, row.attempts, row.locked_by) == ("delivered", 1, None)
    assert (row.last_status_code, row.delivered_ms) == (200, later + 5)

    assert await b.mark([outcome(job_b, later, 500)]) == [False]  # a's delivery cleared it
    [row] = await callback_rows(sessions)
    assert (row.status, row.attempts, row.last_status_code) == ("delivered", 1, 200)
    attempts = [(x.worker, x.status_code) for x in await attempt_rows(sessions)]
    assert attempts == [("a", 200), ("b", 500)]


async def test_one_mark_stores_a_batch_of_owned_and_lost_attempts(
    db_url: str, sessions: async_sessionmaker[AsyncSession]
) -> None:
    box = load_box(db_url)
    merchant = await new_merchant(sessions, box)
    t0 = now_ms()
    await add_events(sessions, merchant.id, "http://127.0.0.1:9/hook", t0, 3)
    a, b = (Outbox(sessions, box, name, LEASE_MS) for name in ("a", "b"))
    jobs, _ = await a.claim(t0, 3, {}, 3)
    assert len(jobs) == 3
    [taken], _ = await b.claim(t0 + LEASE_MS + 1, 1, {}, 3)  # b takes the oldest over
    kept = [j for j in jobs if j.id != taken.id]
    later = t0 + LEASE_MS + 2
    marks = [outcome(j, later, 200 if j is kept[0] else 500) for j in jobs]
    owned = await a.mark(marks)
    assert owned == [j.id != taken.id for j in jobs]
    rows = {r.id: r for r in await callback_rows(sessions)}
    assert (rows[taken.id].status, rows[taken.id].locked_by) == ("pending", "b")
    assert (rows[kept[0].id].status, rows[kept[0].id].locked_by) == ("delivered", None)
    assert (rows[kept[1].id].status, rows[kept[1].id].attempts) == ("pending", 1)
    assert len(await attempt_rows(sessions)) == 3
