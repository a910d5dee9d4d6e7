"""A crypto payment's state, derived from what the chain shows. Pure: no I/O, no clock.

The follower and the expirer only record facts (transfers, their finality, cursor moves);
`settle` turns (payment, its transfers, now, how far the chain has been read) into the status,
the sums and the events to announce. Running it twice on the same facts changes nothing, so
any caller may run it after any change (BTCPay's InvoiceWatcher works the same way).

Rules (docs/architecture.md#settlement):
- A transfer in a block at or below the payment's `created_block` never counts; a dropped
  (forked-out) one neither.
- On time iff its block's timestamp <= `expires_ms`. Funds for a payment that was already
  cancelled or failed are late whatever the time.
- `completed` once final on-time funds reach amount - tolerance (overpayment completes; the
  excess is reported). `confirming` while enough is seen but not all of it final. Partial
  funds leave the payment `pending`, accumulating.
- `expired` once the deadline has passed both on the wall clock and on the chain as read
  (a block after the deadline has been walked), and no on-time transfer awaits finality.
- Late funds (final, after the deadline) are recorded in `late_micro` and announced with
  `payment.late` once the payment is closed; the status stays what it was. A payment closed
  without funds (cancelled, failed) keeps the sum it was closed with as received: only what
  came on top of it is late, so no amount is ever reported twice.
- Funds that reach a `completed` payment later (on time or within the late window) are added
  to what it received and announced with `payment.overpaid`; the status stays `completed`.
  Late funds announced before it completed stay late, not counted again.
- A `confirming` payment whose funds vanish in a fork goes back to `pending` with
  `payment.reverted` (and may expire right after, in the same settlement).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import msgspec

from watcher.payments.states import (
    CLOSED_WITHOUT_FUNDS,
    COMPLETED,
    CONFIRMING,
    EVENT_FOR_STATE,
    EXPIRED,
    FINAL_STATES,
    LATE_EVENT,
    OVERPAID_EVENT,
    PENDING,
    REVERTED_EVENT,
)
from watcher.tron.transfers import DROPPED, FINAL


@dataclass(frozen=True, slots=True)
class Due:
    """What settling needs to know about a payment."""

    status: str
    amount_micro: int
    expires_ms: int
    created_block: int
    late_micro: int = 0  # late funds already announced
    received_micro: int = 0  # received as last stored (announced, once the payment is closed)


class Credit(msgspec.Struct, frozen=True, gc=False):
    """A transfer attributed to the payment.

    A frozen msgspec Struct, not a dataclass: the follower makes one for each stored transfer
    of every payment it settles, thousands per run of blocks, and a frozen dataclass costs
    six times as much to build (its fields are strings and ints: no cycle, no GC tracking)."""

    block_number: int
    block_ms: int
    amount_micro: int
    state: str  # seen | final | dropped


@dataclass(frozen=True, slots=True)
class Announcement:
    """An event to record, and the status the payment shows in it."""

    event: str
    status: str


@dataclass(frozen=True, slots=True)
class Settlement:
    status: str
    received_micro: int  # final, on time
    confirming_micro: int  # seen, not yet final
    late_micro: int  # final, late, announced
    late: bool
    excess_micro: int
    announcements: tuple[Announcement, ...]

    @property
    def events(self) -> tuple[str, ...]:
        return tuple(a.event for a in self.announcements)


def is_late(due: Due, block_ms: int) -> bool:
    return due.status in CLOSED_WITHOUT_FUNDS or block_ms > due.expires_ms


def counts(due: Due, credit: Credit) -> bool:
    return credit.state != DROPPED and credit.block_number > due.created_block


@dataclass(frozen=True, slots=True)
class _Sums:
    on_final: int = 0
    on_seen: int = 0
    late_final: int = 0
    late_seen: int = 0


def _sums(due: Due, credits: Iterable[Credit]) -> _Sums:
    on_final = on_seen = late_final = late_seen = 0
    for c in credits:
        if not counts(due, c):
            continue
        final = c.state == FINAL
        if is_late(due, c.block_ms):
            late_final += c.amount_micro if final else 0
            late_seen += 0 if final else c.amount_micro
        else:
            on_final += c.amount_micro if final else 0
            on_seen += 0 if final else c.amount_micro
    return _Sums(on_final, on_seen, late_final, late_seen)


def _status(due: Due, s: _Sums, *, now_ms: int, chain_ms: int, tolerance_micro: int) -> str:
    needed = max(due.amount_micro - tolerance_micro, 1)
    if due.status in CLOSED_WITHOUT_FUNDS or due.status == COMPLETED:
        return due.status
    if s.on_final >= needed:
        return COMPLETED
    if due.status == EXPIRED:
        return EXPIRED
    if s.on_seen > 0 and s.on_final + s.on_seen >= needed:
        return CONFIRMING
    deadline_passed = now_ms > due.expires_ms and chain_ms > due.expires_ms
    if deadline_passed and s.on_seen == 0:
        return EXPIRED
    return PENDING


def _announcements(
    due: Due, status: str, *, late_grew: bool, overpaid: bool
) -> tuple[Announcement, ...]:
    out: list[Announcement] = []
    if due.status == CONFIRMING and status in (PENDING, EXPIRED):
        out.append(Announcement(REVERTED_EVENT, PENDING))
    if status != due.status and status in EVENT_FOR_STATE:
        out.append(Announcement(EVENT_FOR_STATE[status], status))
    if overpaid:
        out.append(Announcement(OVERPAID_EVENT, status))
    if late_grew:
        out.append(Announcement(LATE_EVENT, status))
    return tuple(out)


def _split(due: Due, status: str, s: _Sums) -> tuple[int, int]:
    """(received, late) of a settled payment: every final unit counted in one of them once."""
    if status == COMPLETED:
        # Whatever came after the deadline adds to what it received; what was announced as
        # late before it completed stays late.
        return s.on_final + s.late_final - due.late_micro, due.late_micro
    if status in CLOSED_WITHOUT_FUNDS:
        # Every credit counts as late here (is_late); what it held when closed stays received.
        kept = min(due.received_micro, s.late_final)
        return kept, s.late_final - kept
    return s.on_final, (s.late_final if status in FINAL_STATES else due.late_micro)


def settle(
    due: Due,
    credits: Iterable[Credit],
    *,
    now_ms: int,
    chain_ms: int,
    tolerance_micro: int = 0,
) -> Settlement:
    """The payment's state given its credits.

    `chain_ms`: the timestamp of the newest block walked (the `seen` cursor). A payment
    cannot expire before the chain has been read past its deadline: an on-time transfer
    could still be in a block not read yet.
    """
    s = _sums(due, credits)
    status = _status(due, s, now_ms=now_ms, chain_ms=chain_ms, tolerance_micro=tolerance_micro)
    received, late_micro = _split(due, status, s)
    excess = max(received - due.amount_micro, 0) if status == COMPLETED else 0
    overpaid = due.status == COMPLETED and received > due.received_micro
    return Settlement(
        status=status,
        received_micro=received,
        confirming_micro=s.on_seen + s.late_seen,
        late_micro=late_micro,
        late=late_micro > 0,
        excess_micro=excess,
        announcements=_announcements(
            due, status, late_grew=late_micro > due.late_micro, overpaid=overpaid
        ),
    )
