"""JSON with exact amounts: money is read as Decimal, Decimals are written as JSON numbers.
Money never passes through float.

Money is what kasa-watcher sends as money: `amount`, `rate` and every field ending in
`Amount` or `Usdt` (paidAmount, amountUsdt, receivedUsdt, …), at any depth, whole or not
(`750` is Decimal('750') as `750.5` is Decimal('750.5')). Other numbers are as JSON has them
(`sequence` an int), and the merchant's own `metadata` comes back as it was sent."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

MONEY_NAMES = ("amount", "rate")
MONEY_SUFFIXES = ("Amount", "Usdt")
METADATA = "metadata"


def is_money(key: str) -> bool:
    """Whether kasa-watcher sends the field `key` as money (as the daemon decides it)."""
    return key in MONEY_NAMES or key.endswith(MONEY_SUFFIXES)


def loads(text: str | bytes) -> Any:
    """Parse JSON, money as Decimal; a key repeated in one object or NaN/Infinity is a
    ValueError."""
    value = json.loads(
        text, parse_float=Decimal, parse_constant=_no_constant, object_pairs_hook=_one_each
    )
    return _money_as_decimal(value)


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


def _money_as_decimal(value: Any) -> Any:
    """`value` with every whole-number money field made Decimal (a fraction already is),
    outside metadata; walked without recursion, so no nesting JSON allows can overflow it."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, dict):
            for key, field in item.items():
                if key == METADATA:
                    continue
                if is_money(key) and isinstance(field, int) and not isinstance(field, bool):
                    item[key] = Decimal(field)
                elif isinstance(field, dict | list):
                    pending.append(field)
    return value


def _one_each(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"the key {key!r} appears twice in one JSON object")
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")
