"""JSON in and out of Xero with money exact: fractions read as ``Decimal``, ``Decimal`` written as
a number literal from its own digits, floats refused (the rule of ``qbo/jsoncodec.py``, which is
provider-neutral; Xero's integer amounts need no key list because mapping reads every amount
through ``Decimal(str(value))``)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

__all__ = ["dumps", "loads"]


def loads(data: bytes | str) -> Any:
    return json.loads(data, parse_float=Decimal)


def _encode(value: Any, out: list[str]) -> None:
    if value is None or isinstance(value, bool | str | int):
        out.append(json.dumps(value, ensure_ascii=False))
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"cannot send a non-finite number to Xero: {value}")
        out.append(format(value, "f"))
    elif isinstance(value, float):
        raise TypeError("floats are not sent to Xero; use Decimal for money and quantities")
    elif isinstance(value, Mapping):
        out.append("{")
        for index, (key, item) in enumerate(value.items()):
            out.append(("," if index else "") + json.dumps(str(key), ensure_ascii=False) + ":")
            _encode(item, out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for index, item in enumerate(value):
            out.append("," if index else "")
            _encode(item, out)
        out.append("]")
    else:
        raise TypeError(f"cannot send {type(value).__name__} to Xero as JSON")


def dumps(value: Any) -> bytes:
    out: list[str] = []
    _encode(value, out)
    return "".join(out).encode("utf-8")
