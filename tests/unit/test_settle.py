"""The pure settlement rules: what status, sums and events a payment gets from its transfers."""

from __future__ import annotations

import dataclasses

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from watcher.tron.settle import Credit, Due, Settlement, settle
from watcher.tron.transfers import DROPPED, FINAL, SEEN

T0 = 1_700_000_000_000
DEADLINE = T0 + 30 * 60_000
AMOUNT = 281_690_000  # 281.69 USDT
BEFORE = DEADLINE - 60_000
AFTER = DEADLINE + 60_000


def due(status: str = "pending", **kw: int) -> Due:
    base = dict(amount_micro=AMOUNT, expires_ms=DEADLINE, created_block=100, late_micro=0)
    base.update(kw)
    return Due(status=status, **base)


def credit(amount: int = AMOUNT, state: str = FINAL, block: int = 101, ms: int = BEFORE) -> Credit:
    return Credit(block_number=block, block_ms=ms, amount_micro=amount, state=state)


def run(
    d: Due, *credits: Credit, now: int = BEFORE, chain: int = BEFORE, tol: int = 0
) -> Settlement:
    return settle(d, credits, now_ms=now, chain_ms=chain, tolerance_micro=tol)


def test_nothing_paid_stays_pending() -> None:
    s = run(due())
    assert (s.status, s.received_micro, s.events) == ("pending", 0, ())


def test_full_amount_seen_is_confirming_then_final_completes() -> None:
    s = run(due(), credit(state=SEEN))
    assert (s.status, s.confirming_micro, s.events) == (
        "confirming",
        AMOUNT,
        ("payment.confirming",),
    )
    s = run(due("confirming"), credit(state=FINAL))
    assert (s.status, s.received_micro, s.events) == ("completed", AMOUNT, ("payment.completed",))


def test_final_at_first_sight_completes_directly() -> None:
    assert run(due(), credit()).events == ("payment.completed",)


def test_partial_payments_accumulate_while_pending() -> None:
    s = run(due(), credit(100_000_000), credit(81_690_000, state=SEEN))
    assert (s.status, s.received_micro, s.confirming_micro) == ("pending", 100_000_000, 81_690_000)
    s = run(due(), credit(100_000_000), credit(181_690_000, state=SEEN))
    assert s.status == "confirming"
    s = run(due("confirming"), credit(100_000_000), credit(181_690_000))
    assert (s.status, s.received_micro) == ("completed", AMOUNT)


def test_overpayment_completes_and_reports_the_excess() -> None:
    s = run(due(), credit(AMOUNT + 5_000_000))
    assert (s.status, s.excess_micro) == ("completed", 5_000_000)


def test_tolerance_accepts_a_small_shortfall_only() -> None:
    assert run(due(), credit(AMOUNT - 10), tol=10).status == "completed"
    assert run(due(), credit(AMOUNT - 11), tol=10).status == "pending"


def test_transfer_at_or_below_created_block_never_counts() -> None:
    assert run(due(), credit(block=100)).status == "pending"
    assert run(due(), credit(block=99)).received_micro == 0


def test_expires_only_when_clock_and_chain_are_past_the_deadline() -> None:
    assert run(due(), now=AFTER, chain=BEFORE).status == "pending"  # blocks not read yet
    assert run(due(), now=BEFORE, chain=AFTER).status == "pending"
    s = run(due(), now=AFTER, chain=AFTER)
    assert (s.status, s.events) == ("expired", ("payment.expired",))


def test_expiry_keeps_the_partial_sum() -> None:
    s = run(due(), credit(50_000_000), now=AFTER, chain=AFTER)
    assert (s.status, s.received_micro) == ("expired", 50_000_000)


def test_on_time_transfer_awaiting_finality_holds_expiry() -> None:
    assert run(due(), credit(state=SEEN), now=AFTER, chain=AFTER).status == "confirming"
    assert run(due(), credit(10, state=SEEN), now=AFTER, chain=AFTER).status == "pending"
    s = run(due("confirming"), credit(), now=AFTER, chain=AFTER)
    assert s.status == "completed"  # on time: its block is before the deadline


def test_fork_drops_the_transfer_that_made_it_confirming() -> None:
    s = run(due("confirming"), credit(state=DROPPED))
    assert (s.status, s.events) == ("pending", ("payment.reverted",))
    assert s.announcements[0].status == "pending"
    s = run(due("confirming"), credit(state=DROPPED), now=AFTER, chain=AFTER)
    assert s.events == ("payment.reverted", "payment.expired")


def test_late_funds_are_recorded_flagged_and_announced_once() -> None:
    expired = due("expired")
    s = run(expired, credit(AMOUNT, ms=AFTER), now=AFTER + 1, chain=AFTER)
    assert (s.status, s.late, s.late_micro, s.received_micro) == ("expired", True, AMOUNT, 0)
    assert s.events == ("payment.late",)
    again = run(dataclasses.replace(expired, late_micro=AMOUNT), credit(AMOUNT, ms=AFTER))
    assert again.events == () and again.late


def test_late_funds_not_yet_final_are_not_announced() -> None:
    s = run(due("expired"), credit(AMOUNT, ms=AFTER, state=SEEN), now=AFTER, chain=AFTER)
    assert (s.late, s.events, s.confirming_micro) == (False, (), AMOUNT)


def test_late_funds_on_a_pending_payment_wait_for_it_to_close() -> None:
    # An on-time transfer awaits finality while a late one is already final.
    s = run(due(), credit(10, state=SEEN), credit(AMOUNT, ms=AFTER), now=AFTER, chain=AFTER)
    assert (s.status, s.late, s.events) == ("pending", False, ())
    s = run(due(), credit(10), credit(AMOUNT, ms=AFTER), now=AFTER, chain=AFTER)
    assert (s.status, s.late_micro, s.events) == (
        "expired",
        AMOUNT,
        ("payment.expired", "payment.late"),
    )


def test_funds_for_a_cancelled_payment_are_late() -> None:
    s = run(due("cancelled"), credit())
    assert (s.status, s.late, s.received_micro, s.events) == (
        "cancelled",
        True,
        0,
        ("payment.late",),
    )


def test_funds_reaching_a_completed_payment_later_are_announced_as_overpaid() -> None:
    paid = due("completed", received_micro=AMOUNT)
    on_time = credit(5_000_000, block=150)
    s = run(paid, credit(), on_time)
    assert (s.status, s.received_micro, s.excess_micro, s.late) == (
        "completed",
        AMOUNT + 5_000_000,
        5_000_000,
        False,
    )
    assert s.events == ("payment.overpaid",)
    assert s.announcements[0].status == "completed"
    again = dataclasses.replace(paid, received_micro=s.received_micro)
    assert run(again, credit(), on_time).events == ()
    late = credit(7, ms=AFTER, block=160)  # within the late window: more of the same
    s = run(again, credit(), on_time, late, now=AFTER, chain=AFTER)
    assert (s.status, s.received_micro, s.late_micro, s.late) == (
        "completed",
        AMOUNT + 5_000_007,
        0,
        False,
    )
    assert s.events == ("payment.overpaid",)
    assert run(again, credit(), on_time, msgspec.structs.replace(late, state=SEEN)).events == ()


def test_late_funds_announced_before_a_completion_are_not_counted_again() -> None:
    # Announced as late while expired; an on-time transfer then completes it.
    expired = due("expired", late_micro=7)
    s = run(expired, credit(), credit(7, ms=AFTER, block=150), now=AFTER, chain=AFTER)
    assert (s.status, s.received_micro, s.late_micro) == ("completed", AMOUNT, 7)


def test_a_closed_payment_never_counts_the_same_funds_twice() -> None:
    # Cancelled holding 20 USDT (allowed before cancel was refused once funds arrived): the
    # 20 were in payment.cancelled already and must not come back as payment.late.
    cancelled = due("cancelled", received_micro=20_000_000)
    s = run(cancelled, credit(20_000_000))
    assert (s.received_micro, s.late_micro, s.events) == (20_000_000, 0, ())
    s = run(cancelled, credit(20_000_000), credit(3, block=150))
    assert (s.received_micro, s.late_micro, s.events) == (20_000_000, 3, ("payment.late",))


states = st.sampled_from([SEEN, FINAL, DROPPED])
credits = st.lists(
    st.builds(
        Credit,
        block_number=st.integers(95, 120),
        block_ms=st.sampled_from([BEFORE, DEADLINE, AFTER]),
        amount_micro=st.integers(1, AMOUNT),
        state=states,
    ),
    max_size=6,
)


@given(
    st.sampled_from(["pending", "confirming", "expired", "completed", "cancelled"]),
    credits,
    st.sampled_from([BEFORE, AFTER]),
    st.sampled_from([BEFORE, AFTER]),
)
def test_settling_is_idempotent_and_never_counts_dropped_funds(
    status: str, cs: list[Credit], now: int, chain: int
) -> None:
    first = run(due(status), *cs, now=now, chain=chain)
    after = due(first.status, late_micro=first.late_micro, received_micro=first.received_micro)
    second = run(after, *cs, now=now, chain=chain)
    assert second.events == () and second.status == first.status
    live_final = sum(c.amount_micro for c in cs if c.state == FINAL and c.block_number > 100)
    assert first.received_micro + first.late_micro <= live_final
    if status == "completed":
        assert first.status == "completed"
    if first.status == "completed" and status != "completed":
        assert first.received_micro >= AMOUNT
