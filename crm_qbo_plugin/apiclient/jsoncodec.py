"""JSON in and out of an accounting API with money kept exact.

Reading: every JSON number with a fraction becomes ``Decimal``, and so do integers under the
caller's ``money_keys`` (QBO sends ``"UnitPrice": 75`` and ``75.5`` alike), so arithmetic on amounts
never mixes types. Writing: ``Decimal`` is emitted as a JSON number literal from its own digits
(``0.30``, never ``0.30000000000000004``); floats are refused, so binary rounding cannot slip into
the books.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

__all__ = ["dumps", "loads"]


@lru_cache(maxsize=8)
def _decimal_hook(money_keys: frozenset[str]) -> Callable[[list[tuple[str, Any]]], dict[str, Any]]:
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in pairs:
            if key in money_keys and isinstance(value, int) and not isinstance(value, bool):
                value = Decimal(value)
            result[key] = value
        return result

    return hook


def loads(data: bytes | str, *, money_keys: frozenset[str] = frozenset()) -> Any:
    """Parse a JSON body with ``Decimal`` for fractions and for integers under ``money_keys``."""
    if not money_keys:
        return json.loads(data, parse_float=Decimal)
    return json.loads(data, parse_float=Decimal, object_pairs_hook=_decimal_hook(money_keys))


def _encode(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(json.dumps(value, ensure_ascii=False))
    elif isinstance(value, int):
        out.append(str(int(value)))
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"cannot send a non-finite number to the accounting API: {value}")
        out.append(format(value, "f"))
    elif isinstance(value, float):
        raise TypeError("floats are not sent to the accounting API; use Decimal for money and quantities")
    elif isinstance(value, Mapping):
        out.append("{")
        first = True
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"JSON object keys must be strings, got {type(key).__name__}")
            if not first:
                out.append(",")
            first = False
            out.append(json.dumps(key, ensure_ascii=False))
            out.append(":")
            _encode(item, out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _encode(item, out)
        out.append("]")
    elif isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("datetimes sent to the accounting API must be timezone-aware")
        out.append(json.dumps(value.isoformat()))
    elif isinstance(value, date):
        out.append(json.dumps(value.isoformat()))
    else:
        raise TypeError(f"cannot send a {type(value).__name__} to the accounting API as JSON")


def dumps(value: Any) -> bytes:
    """Serialise a request body to UTF-8 JSON, ``Decimal`` as exact number literals."""
    out: list[str] = []
    _encode(value, out)
    return "".join(out).encode("utf-8")
