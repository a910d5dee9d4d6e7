"""The outbox's claims and marks on PostgreSQL, as statements written out once.

Same steps, same rows as the portable code in watcher.callbacks.outbox, in fewer round trips
and without building and compiling SQLAlchemy statements for every batch: at several hundred
callbacks a second that building was most of a delivery worker's database CPU (a mark of 16
attempts: 2.2 ms of CPU through SQLAlchemy Core and six round trips, 0.4 ms as one statement).

- A claim is one statement on its own (its own transaction): lock due candidates (SKIP
  LOCKED), pick those that fit the per-host limits (window functions, the rule of
  watcher.callbacks.outbox.pick), lease them and read what sending needs.
- A mark is one statement on its own: lock the rows still leased to this worker, store every
  attempt, update the callbacks we own or delivered, and say which we owned.
Arrays (unnest) carry per-host counts and batches, so each statement is the same for any
size, prepared once per connection. One round trip each: a claim was four (BEGIN, SELECT,
UPDATE, COMMIT), a mark six.

Both commit asynchronously, as the portable code does with SET LOCAL: `set_config(…, true)`
in the statement sets synchronous_commit for its own transaction (an uncorrelated subquery,
run once before any row is read), which saves the round trip of a SET.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

_ASYNC_COMMIT = "(SELECT set_config('synchronous_commit', 'off', true)) IS NOT NULL"

# One statement (its own transaction): lock due candidates, oldest first, skipping rows other
# workers hold; pick those that fit the free slots and each host's limit (as outbox.pick
# does: a host's rank among the candidates plus its attempts in flight); lease them and read
# what sending needs. `seen` is the number of candidates (more may be due when it reached
# the limit, or when some were left out).
#
# Candidates come in the order of ix_callback_due (status, next_attempt_ms) alone: callbacks
# due at the same millisecond (a block's payments) come in index order, insertion order in
# practice. Ordering them by id as well made PostgreSQL read and sort every due row at each
# claim (1.4 ms for 3000 due rows, against 0.13 ms reading the index up to the limit).
#
# A row without a host (never written by this code: the host is derived on insert) counts
# against its URL's limit rather than its host:port's.
CLAIM = f"""
WITH candidate AS (
  SELECT c.id, coalesce(c.host, c.url) AS host, c.next_attempt_ms
  FROM callback c
  WHERE c.status = 'pending' AND c.next_attempt_ms <= $1 AND c.locked_until_ms <= $1
    AND (c.host IS NULL OR c.host <> ALL($2::varchar[]))
    AND {_ASYNC_COMMIT}
  ORDER BY c.next_attempt_ms
  LIMIT $3
  FOR UPDATE OF c SKIP LOCKED
), ranked AS (
  SELECT candidate.id, candidate.next_attempt_ms, count(*) OVER () AS seen,
    coalesce(busy.n, 0) + row_number() OVER (
      PARTITION BY candidate.host ORDER BY candidate.next_attempt_ms, candidate.id
    ) AS slot
  FROM candidate
  LEFT JOIN unnest($4::varchar[], $5::integer[]) AS busy(host, n) ON busy.host = candidate.host
), chosen AS (
  SELECT id, seen FROM ranked WHERE slot <= $6 ORDER BY next_attempt_ms, id LIMIT $7
)
UPDATE callback c SET locked_until_ms = $8, locked_by = $9
FROM chosen, payment_event e, merchant m, payment p
WHERE c.id = chosen.id
  AND e.event_id = c.event_id AND m.id = e.merchant_id AND p.id = e.payment_id
RETURNING c.id, c.host, c.url, c.attempts,
  e.event_id, e.payment_id, e.merchant_id, e.type, e.sequence, e.status, e.created_ms,
  e.data_json, m.webhook_secret_enc, m.test_webhook_secret_enc, p.sandbox, chosen.seen
"""

# What a mark stores per attempt, in MARK's array order.
MARK_COLUMNS = (
    "id",
    "attempt",
    "started_ms",
    "duration_ms",
    "status_code",
    "error",
    "status",
    "next_ms",
    "delivered_ms",
)

# A row whose lease passed to another worker is theirs to mark, unless we delivered:
# delivered is a fact, recorded regardless (their mark then finds it delivered).
MARK = f"""
WITH done AS (
  SELECT * FROM unnest($1::bigint[], $2::integer[], $3::bigint[], $4::integer[],
                       $5::integer[], $6::text[], $7::varchar[], $8::bigint[], $9::bigint[])
    AS d(id, attempt, started_ms, duration_ms, status_code, error, status, next_ms,
         delivered_ms)
  WHERE {_ASYNC_COMMIT}
), mine AS (
  SELECT c.id FROM callback c JOIN done ON done.id = c.id
  WHERE c.locked_by = $10
  FOR UPDATE OF c
), attempts AS (
  INSERT INTO callback_attempt
    (callback_id, attempt, started_ms, duration_ms, status_code, error, worker)
  SELECT id, attempt, started_ms, duration_ms, status_code, error, $10 FROM done
), marked AS (
  UPDATE callback c SET
    attempts = c.attempts + 1,
    status = done.status,
    next_attempt_ms = coalesce(done.next_ms, c.next_attempt_ms),
    locked_until_ms = 0,
    locked_by = NULL,
    last_status_code = done.status_code,
    last_error = done.error,
    delivered_ms = done.delivered_ms
  FROM done
  WHERE c.id = done.id AND c.status <> 'delivered'
    AND (done.status = 'delivered' OR c.id IN (SELECT id FROM mine))
)
SELECT id FROM mine
"""


async def claim(
    engine: AsyncEngine,
    now: int,
    free: int,
    in_flight: Mapping[str, int],
    per_host: int,
    limit: int,
    until: int,
    worker_id: str,
) -> Sequence[Any]:
    """Lease up to `free` due callbacks until `until`: their rows (outbox._SENDING's columns,
    then `seen`), or none."""
    saturated = [h for h, n in in_flight.items() if n >= per_host]
    busy = [h for h in in_flight if h not in saturated]
    params = (now, saturated, limit, busy, [in_flight[h] for h in busy], per_host, free)
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        return (await conn.exec_driver_sql(CLAIM, (*params, until, worker_id))).all()


async def mark(engine: AsyncEngine, worker_id: str, rows: Sequence[Mapping[str, Any]]) -> set[int]:
    """Store a batch of attempts (rows keyed by MARK_COLUMNS): the ids of the callbacks
    whose lease was still ours."""
    arrays = tuple([row[name] for row in rows] for name in MARK_COLUMNS)
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        return set((await conn.exec_driver_sql(MARK, (*arrays, worker_id))).scalars())
