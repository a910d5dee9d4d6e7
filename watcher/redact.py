"""Printable forms of values that can hold credentials.

A node URL may carry a password (`https://user:pass@host`) or a token in its path or query
(hosted nodes put the API key there). Metrics, logs, /healthz and the CLI name a node by
scheme, host and port only; what was left out is shown as `***`.

A database URL is shown whole but for its password, which asyncpg also takes from the query
string (`?password=…`, `?sslpassword=…`).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

HIDDEN = "***"
_SECRET_QUERY_KEY = re.compile(r"pass|secret|token", re.IGNORECASE)


def redact_url(url: str) -> str:
    """`http://u:p@host:8090/tok/x?k=v` -> `http://***@host:8090/***`."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return HIDDEN
    if ":" in host:
        host = f"[{host}]"
    shown = f"{parts.scheme}://" if parts.scheme else ""
    if parts.username is not None or parts.password is not None:
        shown += f"{HIDDEN}@"
    shown += host + (f":{port}" if port is not None else "")
    if parts.path.strip("/") or parts.query or parts.fragment:
        shown += f"/{HIDDEN}"
    return shown


def redact_db_url(url: str) -> str:
    """`postgresql+asyncpg://u:p@h/db?password=x` -> `postgresql+asyncpg://u:***@h/db?password=***`."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return HIDDEN
    shown = parsed.set(query={}).render_as_string(hide_password=True)
    pairs = [
        f"{key}={HIDDEN if _SECRET_QUERY_KEY.search(key) else value}"
        for key, values in parsed.query.items()
        for value in ((values,) if isinstance(values, str) else values)
    ]
    return shown + ("?" + "&".join(pairs) if pairs else "")
