"""JSON with exact decimals: Decimal goes out as a JSON number, numbers come in as Decimal.

The standard encoder cannot emit a Decimal as a number, and going through float would round
money. Decimals are written as placeholders and the placeholders then replaced by the
canonical number text.

Reading, a key that appears twice in one object is an error by default: parsers disagree on
which one wins (Python's and most JavaScript's take the last, some proxies and WAFs the
first), so a body a proxy checked as 1000 TRY could be read here as 2000.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

from watcher.money import canonical

_MARK = "\u0000dec:"
_PLACEHOLDER = re.compile(r'"\\u0000dec:(-?[0-9.]+)"')


def _mark(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        return _MARK + canonical(obj)
    if isinstance(obj, dict):
        return {k: _mark(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_mark(v) for v in obj]
    return obj


def dumps(obj: Any, *, indent: int | None = None) -> str:
    text = json.dumps(
        _mark(obj),
        ensure_ascii=False,
        indent=indent,
        separators=None if indent else (",", ":"),
    )
    return _PLACEHOLDER.sub(lambda m: m.group(1), text)


def loads(text: str | bytes, *, unique_keys: bool = True) -> Any:
    """Parse JSON with every non-integer number as Decimal (never float).

    ValueError for a key repeated in one object, unless `unique_keys` is False (the last one
    then wins), and for bytes that are not UTF-8: json.loads would guess UTF-16 or UTF-32,
    and read a body that a proxy taking it as UTF-8 (RFC 8259) cannot read at all.
    """
    if isinstance(text, bytes | bytearray):
        # A leading UTF-8 byte order mark is tolerated, as before (RFC 8259 allows it).
        text = bytes(text).decode("utf-8-sig")  # UnicodeDecodeError is a ValueError
    return json.loads(
        text,
        parse_float=Decimal,
        parse_constant=_reject_constant,
        object_pairs_hook=_unique if unique_keys else None,
    )


def has_lone_surrogate(value: Any) -> bool:
    """Whether a string in `value` (a key or a value, at any depth) holds a lone UTF-16
    surrogate: JSON's "\\ud800" escapes decode to them, and no UTF-8 encoder, hash or
    database takes them."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError(f"duplicate key {key!r} in a JSON object")
        obj[key] = value
    return obj


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")
