"""GET /api/events: the merchant's payment events in order, for reconciliation
(docs/merchant-api.md#events-and-reconciliation).

The cursor is the event's row id, as a string. Ids are allocated when a transaction inserts
the row, not when it commits, so on PostgreSQL an event with a lower id can become visible
after one with a higher id; a reader that had already moved past it would never see it.
Events are therefore listed only once they are SETTLE_MS old: by then every transaction that
could still commit a lower id has finished (ours last milliseconds). Callbacks are not
delayed by this; they are the real-time path, this is the catch-up path.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import BigInteger, bindparam, select
from sqlmodel import col

from watcher.api import schema
from watcher.api.auth import CurrentMerchant, ServicesDep
from watcher.api.responses import DecimalJSONResponse
from watcher.callbacks.payload import event_view
from watcher.db.models import Payment, PaymentEvent
from watcher.errors import InvalidRequest

router = APIRouter(prefix="/api", default_response_class=DecimalJSONResponse, tags=["events"])

SETTLE_MS = 5_000
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


def _cursor(after: str) -> int:
    if after == "":
        return 0
    # isascii: str.isdigit() also accepts digits such as '²' that int() refuses.
    if not (after.isascii() and after.isdigit()) or len(after) > 18:
        raise InvalidRequest("after must be a cursor returned as `next` by this endpoint")
    return int(after)


# The parameters' bounds are checked by hand (their messages name them); stated for the docs.
_AFTER = Query(
    description="`next` of the previous page; empty for the first",
    json_schema_extra={"pattern": "^[0-9]{0,18}$"},
)
_LIMIT = Query(
    description="Events per page", json_schema_extra={"minimum": 1, "maximum": MAX_LIMIT}
)


@router.get(
    "/events",
    operation_id="listEvents",
    summary="Your events after a cursor, for reconciliation",
    description=(
        "Start with `after` empty, store `next`, call again with it; `hasMore: true` means "
        "call again at once. Test keys see test events, live keys live ones."
    ),
    **schema.EVENTS,
)
async def list_events(
    merchant: CurrentMerchant,
    services: ServicesDep,
    after: Annotated[str, _AFTER] = "",
    limit: Annotated[int, _LIMIT] = DEFAULT_LIMIT,
) -> DecimalJSONResponse:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidRequest(f"limit must be between 1 and {MAX_LIMIT}")
    start = _cursor(after)
    query = (
        select(PaymentEvent)
        .join(Payment, col(Payment.id) == col(PaymentEvent.payment_id))
        .where(
            col(PaymentEvent.merchant_id) == merchant.merchant_id,
            col(Payment.sandbox) == merchant.sandbox,
            # As BIGINT: the id column is 32-bit on PostgreSQL, a cursor need not be.
            col(PaymentEvent.id) > bindparam("after", start, type_=BigInteger),
            col(PaymentEvent.created_ms) <= services.clock() - SETTLE_MS,
        )
        .order_by(col(PaymentEvent.id))
        .limit(limit)
    )
    async with services.sessions() as session:
        events = list((await session.execute(query)).scalars())
    last = events[-1].id if events else start
    body = {
        "success": True,
        "events": [event_view(e, livemode=not merchant.sandbox) for e in events],
        "next": str(last or ""),
        "hasMore": len(events) == limit,
    }
    return DecimalJSONResponse(body)
