"""What the database, the chain and the merchant's endpoint show at the end, checked.

- every payment in the final state its kind calls for, with the sums the payer sent;
- its events a valid path through the states (pending → confirming ⇄ pending → completed |
  expired → late), sequences 1..n, each state event once (a confirming may come back only
  after a reverted);
- every event delivered: its outbox row `delivered` and the merchant's endpoint acknowledged
  its eventId at least once, with the payload the database holds (lost: none; duplicates:
  counted, the contract allows them);
- every transfer the payers sent that is on the final chain credited once, to its payment,
  in the block the chain holds it in; one forked off the chain not credited.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from sqlalchemy import select

from tests.support.soak.merchant import Merchant
from tests.support.soak.payers import KINDS, Order, expected_status
from watcher.db.engine import create_engine, session_factory
from watcher.db.models import Callback, Payment, PaymentEvent, Transfer
from watcher.devchain.chain import DevChain

# (state, event) -> the state after it
PATH = {
    ("pending", "payment.confirming"): "confirming",
    ("pending", "payment.completed"): "completed",
    ("pending", "payment.expired"): "expired",
    ("confirming", "payment.reverted"): "pending",
    ("confirming", "payment.completed"): "completed",
    ("completed", "payment.overpaid"): "completed",
    ("expired", "payment.late"): "expired",
}
ONCE = ("payment.completed", "payment.expired", "payment.late")
SHOWN = 8  # examples printed per kind of violation
LOST = "event lost (never acknowledged by the merchant)"
FORKED_OFF_CREDITED = "transfer forked off the chain but credited"


@dataclass
class Findings:
    lines: list[str] = field(default_factory=list)
    violations: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def say(self, line: str = "") -> None:
        self.lines.append(line)

    def violate(self, what: str, example: str) -> None:
        self.violations[what].append(example)

    @property
    def ok(self) -> bool:
        return not self.violations

    def violation_lines(self) -> list[str]:
        out = []
        for what, examples in self.violations.items():
            out.append(f"  VIOLATION {what}: {len(examples)}")
            out += [f"    {e}" for e in examples[:SHOWN]]
        return out


@dataclass
class Snapshot:
    payments: dict[str, Payment]
    events: dict[str, list[PaymentEvent]]  # by payment, in sequence order
    callbacks: dict[str, Callback]  # by event id
    transfers: dict[str, list[Transfer]]  # by txid


async def snapshot(db_url: str) -> Snapshot:
    engine = create_engine(db_url)
    try:
        async with session_factory(engine)() as s:
            payments = {p.id: p for p in (await s.execute(select(Payment))).scalars()}
            events: dict[str, list[PaymentEvent]] = defaultdict(list)
            for e in (await s.execute(select(PaymentEvent))).scalars():
                events[e.payment_id].append(e)
            callbacks = {c.event_id: c for c in (await s.execute(select(Callback))).scalars()}
            transfers: dict[str, list[Transfer]] = defaultdict(list)
            for t in (await s.execute(select(Transfer))).scalars():
                transfers[t.txid].append(t)
    finally:
        await engine.dispose()
    for listed in events.values():
        listed.sort(key=lambda e: (e.sequence, e.id or 0))
    return Snapshot(payments, events, callbacks, transfers)


def check(snap: Snapshot, orders: list[Order], merchant: Merchant, chain: DevChain) -> Findings:
    f = Findings()
    _states(f, snap, orders)
    _events(f, snap, orders)
    _delivery(f, snap, merchant)
    _transfers(f, snap, orders, chain)
    return f


def _states(f: Findings, snap: Snapshot, orders: list[Order]) -> None:
    f.say("payments: kind -> expected final state: expected / found in it")
    for kind in KINDS:
        mine = [o for o in orders if o.kind == kind]
        good = sum(1 for o in mine if not _state_problem(snap, o))
        f.say(
            f"  {kind:8} -> {expected_status(kind):9}{' late' if kind == 'late' else '     '}"
            f"  {len(mine):5} / {good:5}"
        )
    for o in orders:
        problem = _state_problem(snap, o)
        if problem:
            f.violate("payment not in its expected final state", f"{o.ref} ({o.kind}): {problem}")
    known = {o.txn for o in orders if o.txn}
    extra = [p.external_ref for p in snap.payments.values() if p.id not in known]
    for ref in extra:
        f.violate("payment the payers did not make", ref)
    found = Counter(p.status for p in snap.payments.values())
    f.say(
        f"  in the database: {len(snap.payments)} payments, "
        + ", ".join(f"{n} {s}" for s, n in sorted(found.items()))
    )


def _state_problem(snap: Snapshot, o: Order) -> str:
    if o.error:
        return o.error
    p = snap.payments.get(o.txn)
    if p is None:
        return f"{o.txn} not in the database"
    want = expected_status(o.kind)
    if p.status != want:
        return f"status {p.status}, expected {want}"
    if o.kind == "late":
        got = (p.late, p.received_micro, p.late_micro)
        if got != (True, 0, o.amount_micro):
            return f"(late, received, late_micro) = {got}, expected (True, 0, {o.amount_micro})"
    elif (p.late, p.received_micro, p.late_micro) != (False, o.due_micro, 0):
        got = (p.late, p.received_micro, p.late_micro)
        return f"(late, received, late_micro) = {got}, expected (False, {o.due_micro}, 0)"
    return ""


def _events(f: Findings, snap: Snapshot, orders: list[Order]) -> None:
    kinds = {o.txn: o.kind for o in orders if o.txn}
    totals: Counter[str] = Counter()
    clean = 0
    for pid, events in snap.events.items():
        types = [e.type for e in events]
        totals.update(types)
        problem = _path_problem(events) or _once_problem(types, kinds.get(pid, ""))
        if problem:
            f.violate("events not a valid path, or a state event twice", f"{pid}: {problem}")
        else:
            clean += 1
    f.say(
        f"events: {sum(totals.values())} in the database: "
        + ", ".join(f"{n} {t.removeprefix('payment.')}" for t, n in sorted(totals.items()))
    )
    f.say(
        f"  payments whose events are a valid path, each state event once: "
        f"{clean} / {len(snap.events)}"
    )


def _path_problem(events: list[PaymentEvent]) -> str:
    sequences = [e.sequence for e in events]
    if sequences != list(range(1, len(events) + 1)):
        return f"sequences {sequences}"
    state = "pending"
    for e in events:
        nxt = PATH.get((state, e.type))
        if nxt is None:
            return f"{e.type} while {state}: {[x.type for x in events]}"
        state = nxt
        shown = "pending" if e.type == "payment.reverted" else state
        if e.status != shown:
            return f"{e.type} recorded with status {e.status}, expected {shown}"
    return ""


def _once_problem(types: list[str], kind: str) -> str:
    counts = Counter(types)
    twice = [t for t in ONCE if counts[t] > 1]
    if twice:
        return f"{twice} more than once: {types}"
    if counts["payment.confirming"] - counts["payment.reverted"] not in (0, 1):
        return f"confirming without a reverted between: {types}"
    if kind == "late" and (counts["payment.expired"], counts["payment.late"]) != (1, 1):
        return f"a late payment without expired and late once: {types}"
    if kind and kind != "late" and counts["payment.completed"] != 1:
        return f"no completed: {types}"
    if counts["payment.overpaid"]:
        return f"overpaid, though no payer paid after completion: {types}"
    return ""


def _delivery(f: Findings, snap: Snapshot, merchant: Merchant) -> None:
    all_events = [e for events in snap.events.values() for e in events]
    by_id = {e.event_id: e for e in all_events}
    lost = [e for e in all_events if merchant.acked[e.event_id] == 0]
    for e in lost:
        row = snap.callbacks.get(e.event_id)
        state = "no outbox row" if row is None else f"outbox {row.status}, {row.attempts} tries"
        f.violate(
            LOST,
            f"{e.event_id} {e.type} of {e.payment_id}: {state}",
        )
    undelivered = [c for c in snap.callbacks.values() if c.status != "delivered"]
    for c in undelivered:
        f.violate(
            "outbox row not delivered",
            f"{c.event_id}: {c.status}, {c.attempts} tries, last error {c.last_error!r}",
        )
    for event_id in merchant.acked:
        if event_id not in by_id:
            f.violate("acknowledged an event the database does not hold", event_id)
    for event_id, payload in merchant.payloads.items():
        e = by_id.get(event_id)
        if e is None:
            continue
        said = (payload.get("event"), payload.get("sequence"), payload.get("transactionId"))
        if said != (e.type, e.sequence, e.payment_id):
            f.violate("callback payload differs from the event", f"{event_id}: {said}")
    for why in merchant.rejected:
        f.violate("callback failed verification", why)
    receipts = merchant.receipts
    per_event = Counter(merchant.acked[e.event_id] for e in all_events)
    f.say(
        f"delivery: {len(all_events)} events, {len(snap.callbacks)} outbox rows, "
        f"{len(snap.callbacks) - len(undelivered)} delivered"
    )
    f.say(
        f"  merchant receipts {receipts} (acknowledged), refused while down "
        f"{merchant.refused}, failed verification {len(merchant.rejected)}"
    )
    f.say("  receipts per event: " + ", ".join(f"{k}×: {n}" for k, n in sorted(per_event.items())))
    f.say(f"  events lost {len(lost)}, duplicates {merchant.duplicates}")


def _transfers(f: Findings, snap: Snapshot, orders: list[Order], chain: DevChain) -> None:
    solid = chain.heights()[1]
    ours: set[str] = set()
    sent = on_chain = credited_once = forked_off = 0
    for o in orders:
        for s in o.sent:
            sent += 1
            ours.add(s.txid)
            rows = snap.transfers.get(s.txid, [])
            at = chain.find(s.txid)
            block = at.block if at is not None else None
            if block is None:
                forked_off += 1
                live = [r for r in rows if r.state != "dropped"]
                if live:
                    f.violate(FORKED_OFF_CREDITED, f"{s.txid} ({o.ref})")
                continue
            on_chain += 1
            if block.number > solid:
                f.violate("transfer not final when the soak ended", f"{s.txid} ({o.ref})")
                continue
            problem = _credit_problem(rows, o, s.amount_micro, block.block_id)
            if problem:
                f.violate(
                    "transfer not credited once, to its payment", f"{s.txid} ({o.ref}): {problem}"
                )
            else:
                credited_once += 1
    for txid in snap.transfers:
        if txid not in ours:
            f.violate("transfer recorded that no payer sent", txid)
    f.say(
        f"transfers: {sent} sent, {on_chain} on the final chain, {credited_once} credited "
        f"once to their payment in their block, {forked_off} forked off the chain "
        f"(credited nonetheless: {len(f.violations.get(FORKED_OFF_CREDITED, []))})"
    )


def _credit_problem(rows: list[Transfer], o: Order, amount: int, block_id: str) -> str:
    if len(rows) != 1:
        return f"{len(rows)} rows"
    t = rows[0]
    if t.state != "final":
        return f"state {t.state}"
    if t.payment_id != o.txn:
        return f"credited to {t.payment_id}"
    if t.amount_micro != amount:
        return f"amount {t.amount_micro}, sent {amount}"
    if t.block_id != block_id:
        return f"block {t.block_id[:16]}…, the chain holds it in {block_id[:16]}…"
    return ""
