"""schemathesis against the served /openapi.json, on SQLite and PostgreSQL: every operation
gets bounded, derandomized examples (schema-valid and schema-invalid ones), over real HTTP
to a server with every payment method on (the provider stand-ins on loopback). No answer may
be a 5xx, and every answer must be one the document lists: its status, its content type, its
body, its headers.

Random ids name no payment, so status and cancel are also run against payments that exist
(crypto, card, bank, wallet; pending, completed, cancelled), events are listed with events
old enough to show, and the bank webhook is also run with its real token (verified bodies
of any shape).

The run prints what it did per database: operations, examples per operation and status,
failures.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import update

from tests.support.cards import SECRET_KEY, WEBHOOK_SECRET
from tests.support.providers import ProviderHarness, provider_harness
from watcher import jsonio
from watcher.db.models import PaymentEvent

BANK_TOKEN = "bt_schemathesis_7c1d2e9f0a"
# Examples of one operation (one variant, one generation mode) on each database.
EXAMPLES = 100
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
EVERY_METHOD: dict[str, object] = {
    "card": "acidpanel",
    "bank": "banktransfer",
    "wallet": "kazawallet",
    "banktransfer": {
        "webhook_token": BANK_TOKEN,
        "bank_name": "Ziraat Bankası",
        "account_name": "Kasa Dükkân Ltd. Şti.",
        "iban": "TR33 0006 1005 1978 6457 8413 26",
    },
    # Configured, not used by a method: its webhooks are answered all the same.
    "stripe": {"secret_key": SECRET_KEY, "webhook_secret": WEBHOOK_SECRET},
}


@dataclass
class Known:
    """Payments that exist before the run, in every method and several states."""

    refs: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)


@pytest.fixture
async def served(db_url: str) -> AsyncIterator[ProviderHarness]:
    unlimited = {"rate_limit_per_minute": 0, "auth_failures_per_minute": 0}
    async with provider_harness(db_url, providers=EVERY_METHOD, api=unlimited) as harness:
        yield harness


async def _payments(api: ProviderHarness) -> Known:
    known = Known()
    for method in ("crypto", "card", "bank", "wallet", "crypto", "bank"):
        ref = f"ST-{method}-{len(known.refs)}"
        created = await api.pay(method, externalRef=ref, metadata={"userId": ref, "n": 1.5})
        assert created.status_code == 200, created.text
        known.refs.append(ref)
        known.ids.append(created.json()["transactionId"])
    cancelled = await api.http.post(
        f"{api.url}/api/payment/{known.ids[0]}/cancel", headers=api.headers()
    )
    assert cancelled.status_code == 200, cancelled.text
    paid = {"processId": known.ids[2], "status": "successful", "type": "deposit", "amount": 1000}
    webhook = await api.webhook("banktransfer", jsonio.dumps(paid).encode(), {}, BANK_TOKEN)
    assert webhook.status_code == 200, webhook.text
    async with api.services.sessions() as s, s.begin():  # old enough for GET /api/events
        await s.execute(update(PaymentEvent).values(created_ms=PaymentEvent.created_ms - 60_000))
    return known


def _variants(schema: Any, known: Known, api_key: str) -> list[tuple[str, Any, GenerationMode]]:
    """(label, strategy, mode) for every operation in both modes, and the variants on real
    payments and the real bank token."""
    headers = {"x-api-key": api_key}
    out = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            out.append((operation.label, operation.as_strategy(mode, headers=headers), mode))
    status = schema["/api/payment/status"]["GET"]
    cancel = schema["/api/payment/{transaction_id}/cancel"]["POST"]
    webhook = schema["/providers/{name}/webhook/{token}"]["POST"]
    positive = GenerationMode.POSITIVE
    by_ref = (
        st.sampled_from(known.refs)
        .flatmap(
            lambda ref: status.as_strategy(positive, headers=headers, query={"externalRef": ref})
        )
        .map(_by_ref_only)
    )
    by_id = st.sampled_from(known.ids).flatmap(
        lambda txn: cancel.as_strategy(
            positive, headers=headers, path_parameters={"transaction_id": txn}
        )
    )
    bank = webhook.as_strategy(
        positive, path_parameters={"name": "banktransfer", "token": BANK_TOKEN}
    )
    out.append((f"{status.label} (existing payments)", by_ref, positive))
    out.append((f"{cancel.label} (existing payments)", by_id, positive))
    out.append((f"{webhook.label} (the real bank token)", bank, positive))
    return out


def _by_ref_only(case: Any) -> Any:
    """The case without a transactionId, which would win over its externalRef."""
    case.query.pop("transactionId", None)
    return case


def fuzz(
    variants: list[tuple[str, Any, GenerationMode]], base_url: str
) -> tuple[Counter[str], list[str]]:
    """Run every variant; the examples run per variant and status, and the failures."""
    counts: Counter[str] = Counter()
    failures: list[str] = []
    session = requests.Session()
    for label, strategy, mode in variants:
        try:
            _examples(strategy, label, base_url, session, counts)
        except Unsatisfiable:
            # No schema-invalid request exists (a path parameter that takes any string).
            assert mode is GenerationMode.NEGATIVE, label
        except Exception as exc:
            failures.append(f"{label} ({mode.value}): {exc}"[:3000])
    return counts, failures


def _examples(
    strategy: Any, label: str, base_url: str, session: requests.Session, counts: Counter[str]
) -> None:
    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case: Any) -> None:
        response = case.call(base_url=base_url, session=session, timeout=30)
        counts[f"{label} -> {response.status_code}"] += 1
        case.validate_response(response, checks=CHECKS)

    run()


async def test_every_operation_answers_as_documented_and_never_5xx(
    served: ProviderHarness, db_kind: str
) -> None:
    document = (await served.http.get(f"{served.url}/openapi.json")).json()
    schema = schemathesis.openapi.from_dict(document)
    known = await _payments(served)
    variants = _variants(schema, known, served.merchant.api_key)
    started = time.monotonic()
    counts, failures = await asyncio.to_thread(fuzz, variants, served.url)
    took_s = time.monotonic() - started
    operations = {label.split(" -> ")[0].split(" (")[0] for label in counts}
    print(
        f"\nschemathesis [{db_kind}]: {len(operations)} operations, {len(variants)} runs, "
        f"{sum(counts.values())} examples in {took_s:.1f} s, {len(failures)} failures"
    )
    for label, count in sorted(counts.items()):
        print(f"  {label}: {count}")
    assert not failures, "\n\n".join(failures)
    assert len(operations) == sum(len(ops) for ops in document["paths"].values())
