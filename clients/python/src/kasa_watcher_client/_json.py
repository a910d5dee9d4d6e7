"""JSON with exact amounts: numbers with a fraction are read as Decimal, Decimals are written
as JSON numbers. Money never passes through float."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any


def loads(text: str | bytes) -> Any:
    """Parse JSON; a key repeated in one object or NaN/Infinity is a ValueError."""
    return json.loads(
        text, parse_float=Decimal, parse_constant=_no_constant, object_pairs_hook=_one_each
    )


def dumps(value: Any) -> str:
    """Compact JSON text; Decimals as plain numbers (`1000.5`, never `1.0005E+3`)."""
    return "".join(_chunks(value))


def _chunks(value: Any) -> Any:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} is not a JSON number")
        yield format(value, "f")
    elif isinstance(value, dict):
        yield "{"
        for i, (key, item) in enumerate(value.items()):
            if not isinstance(key, str):
                raise TypeError(f"JSON object keys are strings, not {type(key).__name__}")
            yield ("," if i else "") + json.dumps(key, ensure_ascii=False) + ":"
            yield from _chunks(item)
        yield "}"
    elif isinstance(value, list | tuple):
        yield "["
        for i, item in enumerate(value):
            yield "," if i else ""
            yield from _chunks(item)
        yield "]"
    elif isinstance(value, float):
        raise TypeError("pass amounts as Decimal, int or str, never float")
    else:
        yield json.dumps(value, ensure_ascii=False)


def _one_each(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"the key {key!r} appears twice in one JSON object")
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")
