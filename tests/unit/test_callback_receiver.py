"""The demo's and the tests' merchant endpoint (watcher.callbacks.receiver) at the ASGI level."""

from __future__ import annotations

from typing import Any

from watcher.callbacks.receiver import CallbackReceiver

SCOPE = {"type": "http", "method": "POST", "path": "/hook", "headers": []}


async def test_a_request_cut_off_mid_body_is_not_taken_for_a_callback() -> None:
    # Found by bench/soak.py: a daemon SIGKILLed while posting a callback leaves the request
    # cut off; the receiver verified the half body, counted a callback that failed
    # verification ("the body is not JSON") and answered it 401.
    messages = [
        {"type": "http.request", "body": b'{"event": "payment.comp', "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    receiver = CallbackReceiver("whsec_test")
    await receiver(SCOPE, receive, send)
    assert receiver.received == [] and sent == []
