"""Waking the delivery worker when callbacks are queued, instead of at its next poll.

`record_event` marks the session that queued a callback; when that session's transaction
commits, the doorbell of this process rings and a delivery worker waiting in the same process
claims at once. A rollback rings nothing. Workers in other processes still find the callback
at their next poll (`callbacks.poll_interval_s`).
"""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

_QUEUED = "watcher.callbacks_queued"


def mark_queued(session: AsyncSession | Session) -> None:
    """This transaction queues at least one callback."""
    session.info[_QUEUED] = True


class Doorbell:
    def __init__(self) -> None:
        self.rung = asyncio.Event()

    def transaction_ended(self, session: Session, committed: bool) -> None:
        """For db.engine.session_factory(on_end=…): ring once a marked transaction commits."""
        if session.info.pop(_QUEUED, False) and committed:
            self.rung.set()
