"""Printable forms of values that can hold credentials.

A node URL may carry a password (`https://user:pass@host`) or a token in its path or query
(hosted nodes put the API key there). Metrics, logs, /healthz and the CLI name a node by
scheme, host and port only; what was left out is shown as `***`.
"""

from __future__ import annotations

from urllib.parse import urlsplit

HIDDEN = "***"


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
