"""A merchant verifying with the seed's Node.js snippet accepts every callback the worker sends.

Callbacks are delivered by the real worker to a receiver on 127.0.0.1 and captured raw; Node
then runs the seed's verification (values taken from the parsed JSON payload) and the Python SDK
checks the same captures.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from decimal import Decimal
from pathlib import Path

import pytest
from kasa_watcher_client import verify_webhook
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.support.callbacks import add_event, callback_settings, new_merchant
from tests.support.servers import serve_asgi
from watcher.callbacks.delivery import DeliveryWorker
from watcher.callbacks.receiver import CallbackReceiver
from watcher.callbacks.sender import callback_session
from watcher.clock import now_ms
from watcher.secrets import load_box

NODE = shutil.which("node")

# The seed's snippet, fed with the parsed payload; timingSafeEqual as the seed advises.
VERIFY_JS = r"""
const crypto = require('crypto');
const fs = require('fs');
const [file, secret] = process.argv.slice(2);
const hmac = (text) => crypto.createHmac('sha256', secret).update(text).digest('hex');
const same = (a, b) => a.length === b.length &&
  crypto.timingSafeEqual(Buffer.from(a, 'hex'), Buffer.from(b, 'hex'));
const results = JSON.parse(fs.readFileSync(file, 'utf8')).map(({ body, headers }) => {
  const payload = JSON.parse(body);
  const txId = payload.transactionId, ref = payload.externalRef, status = payload.status;
  const amount = payload.amount, ts = headers['x-timestamp'];
  const dataString = `${txId}:${ref}:${status}:${amount}:${ts}`;
  const expected = hmac(dataString);
  return {
    ref,
    amount: `${amount}`,
    signature: same(expected, headers['x-signature']),
    body: same(hmac(`${ts}.${body}`), headers['x-body-signature']),
  };
});
process.stdout.write(JSON.stringify(results));
"""

CASES = [  # amount, externalRef, fullName
    (Decimal("1000.00"), "SİPARİŞ-ĞÜŞ-1", "Çağrı Öztürk"),
    (Decimal("281.60"), "ORD-ışık-2", "Işıl Güneş"),
    (Decimal("0.5"), "ÖDEME-ç-3", "Ümit Şahin"),
    (Decimal("500000"), "İADE-4", "İlkay Doğan"),
]
JS_AMOUNTS = ["1000", "281.6", "0.5", "500000"]


async def _node(script: Path, captures: Path, secret: str) -> list[dict[str, object]]:
    assert NODE is not None
    proc = await asyncio.create_subprocess_exec(
        NODE,
        str(script),
        str(captures),
        secret,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    result: list[dict[str, object]] = json.loads(out)
    return result


@pytest.mark.skipif(NODE is None, reason="node is not installed")
async def test_seed_node_snippet_and_python_sdk_accept_every_captured_callback(
    db_url: str, sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    box = load_box(db_url)
    merchant = await new_merchant(sessions, box, "Türk Dükkânı")
    receiver = CallbackReceiver(merchant.webhook_secret)
    async with serve_asgi(receiver) as url, callback_session() as http:
        async with sessions() as s, s.begin():
            for amount, ref, name in CASES:
                await add_event(
                    s, merchant.id, url, now_ms(), ref=ref, amount=amount, full_name=name
                )
        worker = DeliveryWorker(callback_settings(db_url), sessions, box, http)
        assert await worker.run_once() == len(CASES)

    captures = [{"body": r.body.decode("utf-8"), "headers": r.headers} for r in receiver.received]
    captured = tmp_path / "callbacks.json"
    captured.write_text(json.dumps(captures, ensure_ascii=False), "utf-8")
    script = tmp_path / "verify.js"
    script.write_text(VERIFY_JS, "utf-8")

    results = await _node(script, captured, merchant.webhook_secret)
    expected = {(ref, js) for (_, ref, _), js in zip(CASES, JS_AMOUNTS, strict=True)}
    assert {(r["ref"], r["amount"]) for r in results} == expected  # `${amount}` as JS prints it
    assert all(r["signature"] is True and r["body"] is True for r in results), results

    for r in receiver.received:  # the Python SDK agrees on the very same bytes
        assert verify_webhook(r.body, r.headers, merchant.webhook_secret)["externalRef"]

    # and the check can fail: a changed amount no longer verifies in Node
    captures[0]["body"] = str(captures[0]["body"]).replace('"amount":1000,', '"amount":1000.01,')
    captured.write_text(json.dumps(captures, ensure_ascii=False), "utf-8")
    tampered = await _node(script, captured, merchant.webhook_secret)
    assert [r["signature"] for r in tampered].count(False) == 1
