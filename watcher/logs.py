"""Structured logs: one JSON object per line on stderr, secrets redacted.

Event names are stable dotted identifiers (`follower.block`, `callback.delivered`); ids travel
as fields with fixed names (payment_id, txid, block, callback_id, merchant_id), bound for a
whole unit of work with `log_context(...)` so every line inside carries them. Standard-library
loggers (uvicorn, SQLAlchemy, alembic) go through the same formatter, so stderr holds nothing
but JSON lines. stdout stays free for `--json` output.

`configure_logging(settings.log)` is called once at CLI start; calling it again replaces the
previous configuration (tests do).
"""

from __future__ import annotations

import functools
import logging
import re
import sys
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any, TextIO

import structlog
from structlog.tracebacks import ExceptionDictTransformer
from structlog.typing import EventDict, Processor, WrappedLogger

from watcher.config import LogSettings

REDACTED = "[redacted]"

# Normalised key names (lower case, '-' as '_') whose values are never logged.
_SECRET_KEY = re.compile(
    r"(api_?key|secret|password|passwd|authorization|private_?key|secret_?key|token|cookie)"
)
# Secret-shaped text inside any string: our API keys and webhook secrets, bearer tokens.
_SECRET_TEXT = re.compile(r"\b(sk_(?:live|test)_|whsec_)[A-Za-z0-9_\-]+|(?i:bearer)\s+\S+")
# The stripe package logs each request at INFO with Stripe's error text (which can echo what
# was sent), and form bodies and whole answers at DEBUG: customer data, outside our redaction.
_QUIET = {
    "httpx": logging.WARNING,
    "httpcore": logging.WARNING,
    "asyncio": logging.WARNING,
    "stripe": logging.WARNING,
}
_HANDLER_NAME = "watcher.logs"


@functools.lru_cache(maxsize=4096)
def is_secret_key(key: str) -> bool:
    """Cached: a log line has about ten keys, and the same few dozen names recur."""
    return bool(_SECRET_KEY.search(key.lower().replace("-", "_")))


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return _SECRET_TEXT.sub(_mask, value)
    if isinstance(value, dict):
        return {k: REDACTED if is_secret_key(str(k)) else _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


def _mask(m: re.Match[str]) -> str:
    return (m.group(1) or "Bearer ") + REDACTED


def redact_secrets(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
    """Replace the value of any secret-named key (at any depth) and secret-shaped text."""
    for key, value in list(event_dict.items()):
        event_dict[key] = REDACTED if is_secret_key(key) else _scrub(value)
    return event_dict


def redact_exception(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
    """Secret-shaped text in a rendered exception (messages are rendered after the fields
    were redacted; the fields need no second pass)."""
    if "exception" in event_dict:
        event_dict["exception"] = _scrub(event_dict["exception"])
    return event_dict


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        redact_secrets,
    ]


def _drop_color_message(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
    event_dict.pop("color_message", None)  # uvicorn's ANSI copy of the message
    return event_dict


def _renderer(json_logs: bool, stream: TextIO) -> list[Processor]:
    # Tracebacks never carry frame locals: a local can hold an API key or webhook secret,
    # and locals would be rendered after redaction ran.
    if not json_logs and stream.isatty():
        return [
            _drop_color_message,
            structlog.dev.ConsoleRenderer(
                colors=True, exception_formatter=structlog.dev.plain_traceback
            ),
        ]
    return [
        _drop_color_message,
        structlog.processors.ExceptionRenderer(ExceptionDictTransformer(show_locals=False)),
        redact_exception,  # exception messages are rendered only now
        structlog.processors.JSONRenderer(),
    ]


def configure_logging(settings: LogSettings, stream: TextIO | None = None) -> None:
    """Send structlog and standard logging through one redacting formatter to `stream`."""
    stream = stream if stream is not None else sys.stderr
    level = logging.getLevelName(settings.level.upper())
    if not isinstance(level, int):
        raise ValueError(f"log.level {settings.level!r} is not a logging level")
    shared = _shared_processors()
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *_renderer(settings.json_logs, stream),
        ],
    )
    handler = logging.StreamHandler(stream)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name, quiet in _QUIET.items():
        logging.getLogger(name).setLevel(max(quiet, level))
    _route_uvicorn()


def _route_uvicorn() -> None:
    # uvicorn installs its own handlers; let its records reach ours instead.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers.clear()
        lg.propagate = True


@contextmanager
def log_context(
    *,
    payment_id: str | None = None,
    txid: str | None = None,
    block: int | None = None,
    callback_id: int | None = None,
    merchant_id: int | None = None,
) -> Iterator[None]:
    """Bind the given ids to every log line inside (per asyncio task, via contextvars)."""
    ids: MutableMapping[str, Any] = {
        k: v
        for k, v in {
            "payment_id": payment_id,
            "txid": txid,
            "block": block,
            "callback_id": callback_id,
            "merchant_id": merchant_id,
        }.items()
        if v is not None
    }
    with structlog.contextvars.bound_contextvars(**ids):
        yield
