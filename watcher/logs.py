"""Structured logs: one JSON object per line on stderr, secrets redacted.

Event names are stable dotted identifiers (`follower.block`, `callback.delivered`); ids travel
as fields with fixed names (payment_id, txid, block, callback_id, merchant_id), bound for a
whole unit of work with `log_context(...)` so every line inside carries them. Standard-library
loggers (uvicorn, SQLAlchemy, alembic) go through the same processors and renderer, so stderr
holds nothing but JSON lines. stdout stays free for `--json` output.

Our own events do not pass through the standard library: structlog filters them by level,
runs the processors and writes the line itself, to the handler's stream under the handler's
lock (so lines of both kinds never mix). A line costs ~20 µs instead of ~55 (a LogRecord made
and copied, the caller's frame looked up, each field scrubbed): the follower writes one per
credited transfer, ten per block in bench/follower_replay.py.

`configure_logging(settings.log)` is called once at CLI start; calling it again replaces the
previous configuration (tests do).
"""

from __future__ import annotations

import contextlib
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
    if type(value) is int:  # most fields are ids, amounts and block numbers
        return value
    if isinstance(value, str):
        return _SECRET_TEXT.sub(_mask, value) if _may_hold_secret_text(value) else value
    if isinstance(value, dict):
        return {k: REDACTED if is_secret_key(str(k)) else _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


def _may_hold_secret_text(text: str) -> bool:
    """What every match of _SECRET_TEXT contains ("bearer" in any case: no other character
    folds to one of its letters), tested as plain substrings: a few times faster than the
    expression, which then runs only on the rare string that passes."""
    return "sk_" in text or "whsec_" in text or "bearer" in text.lower()


def _mask(m: re.Match[str]) -> str:
    return (m.group(1) or "Bearer ") + REDACTED


def redact_secrets(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
    """Replace the value of any secret-named key (at any depth) and secret-shaped text."""
    for key, value in event_dict.items():  # values replaced in place: no key comes or goes
        event_dict[key] = REDACTED if is_secret_key(key) else _scrub(value)
    return event_dict


def redact_exception(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
    """Secret-shaped text in a rendered exception (messages are rendered after the fields
    were redacted; the fields need no second pass)."""
    if "exception" in event_dict:
        event_dict["exception"] = _scrub(event_dict["exception"])
    return event_dict


def _shared_processors() -> list[Processor]:
    # Level, logger name and time are added after the redaction: none of them is a secret.
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.StackInfoRenderer(),
        redact_secrets,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
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
    """Send structlog and standard logging through the same redacting processors to `stream`."""
    stream = stream if stream is not None else sys.stderr
    level = logging.getLevelName(settings.level.upper())
    if not isinstance(level, int):
        raise ValueError(f"log.level {settings.level!r} is not a logging level")
    shared = _shared_processors()
    rendering = _renderer(settings.json_logs, stream)
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *rendering],
    )
    handler = logging.StreamHandler(stream)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter)
    structlog.configure(
        processors=[*shared, *rendering],
        logger_factory=functools.partial(_Lines, handler),
        wrapper_class=structlog.make_filtering_bound_logger(level),
        cache_logger_on_first_use=False,
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name, quiet in _QUIET.items():
        logging.getLogger(name).setLevel(max(quiet, level))
    _route_uvicorn()


class _Lines:
    """Where structlog writes a rendered event: a line on the handler's stream, under the lock
    the handler takes for standard-library records. A stream that cannot be written to loses
    the line, as the standard library's handler does; the caller carries on."""

    def __init__(self, handler: logging.StreamHandler[TextIO], name: str = "", *_: Any) -> None:
        assert handler.lock is not None, "a handler has its lock from the start"
        self.name = name  # add_logger_name reads it
        self._handler = handler
        self._lock = handler.lock

    def msg(self, line: str) -> None:
        stream = self._handler.stream
        with self._lock, contextlib.suppress(OSError, ValueError):
            stream.write(line + "\n")
            stream.flush()

    debug = info = warning = error = critical = exception = log = msg


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
