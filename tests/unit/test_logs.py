"""What lands on stderr: JSON lines with ids, and never a secret."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from watcher.config import LogSettings
from watcher.logs import configure_logging, log_context

API_KEY = "sk_live_Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZg"
WEBHOOK_SECRET = "whsec_c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    buf = io.StringIO()
    level = logging.getLogger().level
    configure_logging(LogSettings(level="INFO", json_logs=True), stream=buf)
    yield buf
    structlog.reset_defaults()
    root = logging.getLogger()
    for h in [h for h in root.handlers if h.get_name() == "watcher.logs"]:
        root.removeHandler(h)
    root.setLevel(level)


def lines(buf: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buf.getvalue().splitlines()]


def test_json_line_with_stable_event_name_and_bound_ids(stream: io.StringIO) -> None:
    log = structlog.get_logger("watcher.follower")
    with log_context(payment_id="txn_abc", txid="ff" * 32, block=123):
        log.info("transfer.credited", amount_micro=281690000)
    log.info("follower.idle")
    first, second = lines(stream)
    assert first["event"] == "transfer.credited"
    assert first["payment_id"] == "txn_abc"
    assert first["txid"] == "ff" * 32
    assert first["block"] == 123
    assert first["amount_micro"] == 281690000
    assert first["level"] == "info"
    assert first["timestamp"].endswith("Z")
    assert "payment_id" not in second


def test_secret_named_fields_are_redacted_at_any_depth(stream: io.StringIO) -> None:
    log = structlog.get_logger("watcher.api")
    log.info(
        "request.received",
        api_key=API_KEY,
        webhook_secret=WEBHOOK_SECRET,
        password="hunter2",
        headers={"x-api-key": API_KEY, "Authorization": "Bearer abc.def", "accept": "*/*"},
        settings={"providers": {"stripe": {"secret": "sk_stripe_x", "base_url": "https://s"}}},
    )
    text = stream.getvalue()
    for secret in (API_KEY, WEBHOOK_SECRET, "hunter2", "abc.def", "sk_stripe_x"):
        assert secret not in text
    (line,) = lines(stream)
    assert line["api_key"] == "[redacted]"
    assert line["headers"]["x-api-key"] == "[redacted]"
    assert line["headers"]["accept"] == "*/*"
    assert line["settings"]["providers"]["stripe"]["base_url"] == "https://s"


def test_secrets_inside_messages_are_masked(stream: io.StringIO) -> None:
    structlog.get_logger("watcher.cli").warning(
        "merchant.key_rejected", detail=f"key {API_KEY} unknown; signed with {WEBHOOK_SECRET}"
    )
    (line,) = lines(stream)
    assert API_KEY not in line["detail"] and WEBHOOK_SECRET not in line["detail"]
    assert "sk_live_[redacted]" in line["detail"]


def test_bearer_tokens_are_masked_whatever_the_case(stream: io.StringIO) -> None:
    log = structlog.get_logger("watcher.api")
    for header in ("Bearer abc.def", "BEARER abc.def", "bEaReR\tabc.def"):
        log.warning("request.refused", detail=f"authorization {header} refused", n=1)
    for line in lines(stream):
        assert "abc.def" not in line["detail"] and "[redacted]" in line["detail"]


def test_standard_library_loggers_come_out_as_redacted_json(stream: io.StringIO) -> None:
    logging.getLogger("uvicorn.error").info("Started server with key %s", API_KEY)
    logging.getLogger("httpx").info("HTTP Request: GET http://127.0.0.1 200")  # quietened
    (line,) = lines(stream)
    assert line["logger"] == "uvicorn.error"
    assert API_KEY not in line["event"]


def test_exceptions_are_one_json_line(stream: io.StringIO) -> None:
    try:
        raise RuntimeError("node unreachable")
    except RuntimeError:
        structlog.get_logger("watcher.follower").exception("follower.error", block=7)
    (line,) = lines(stream)
    assert line["event"] == "follower.error"
    assert "node unreachable" in json.dumps(line["exception"])


def test_level_filters_debug(stream: io.StringIO) -> None:
    structlog.get_logger("watcher").debug("noise")
    assert stream.getvalue() == ""


def test_unknown_level_is_refused() -> None:
    with pytest.raises(ValueError, match="not a logging level"):
        configure_logging(LogSettings(level="LOUD"), stream=io.StringIO())


def test_tracebacks_show_no_frame_locals_and_mask_secrets_in_messages(
    stream: io.StringIO,
) -> None:
    def authenticate(api_key: str) -> None:
        webhook_secret = "whsec_" + "s" * 43  # a local that must never reach the log
        raise RuntimeError(f"database down while checking {api_key} ({len(webhook_secret)})")

    try:
        authenticate("sk_live_" + "k" * 43)
    except RuntimeError:
        logging.getLogger("uvicorn.error").exception("Exception in ASGI application")
    text = stream.getvalue()
    assert "whsec_" not in text and "sk_live_" + "k" * 43 not in text
    assert "database down while checking" in text
    assert "color_message" not in text
