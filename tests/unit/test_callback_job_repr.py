"""A claimed callback carries the merchant's webhook secret; its repr must not.

Logged tracebacks render the locals of each frame (structlog's dict_tracebacks does by
default) after the redacting processor has run, so a Job local in a crashed attempt would
otherwise print the secret in clear.
"""

from __future__ import annotations

from watcher.callbacks.outbox import Job
from watcher.db.models import PaymentEvent


def test_job_repr_leaves_the_secret_out() -> None:
    event = PaymentEvent(
        event_id="evt_1",
        payment_id="txn_1",
        merchant_id=1,
        type="payment.completed",
        sequence=1,
        status="completed",
        created_ms=0,
    )
    job = Job(1, "h:80", "http://h/", 1, event, "whsec_TOPSECRET")
    assert "TOPSECRET" not in repr(job)
    assert job.secret == "whsec_TOPSECRET"
