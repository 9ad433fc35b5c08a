"""Xero's ``where`` and ``order`` query parameters, compiled to Python predicates and sort keys.

``where`` is Xero's C#-like filter language: ``Type=="ACCREC"&&Status!="DRAFT"``,
``Contact.ContactID==Guid("…")``, ``Date>=DateTime(2026,1,1)``, ``Name.Contains("x")``,
``Name.ToLower()=="acme"``, ``AND``/``OR``, ``!``, parentheses. String comparisons ignore case.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from xero_sandbox.timefmt import parse_ms_json

Predicate = Callable[[dict[str, Any]], bool]
_TOKEN = re.compile(r'''\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<num>-?\d+(?:\.\d+)?)|(?P<op>==|!=|>=|<=|&&|\|\||[<>!(),])|(?P<id>[A-Za-z_][A-Za-z0-9_.]*))''')
_METHODS = {"contains", "startswith", "endswith", "tolower", "toupper"}


class QueryError(ValueError):
    """An unparseable ``where`` or ``order``."""


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise QueryError(f"cannot parse the where clause at {text[pos:pos + 20]!r}")
        kind = match.lastgroup or ""
        value = match.group(kind)
        if kind == "id" and value.upper() in ("AND", "OR"):
            kind, value = "op", "&&" if value.upper() == "AND" else "||"
        out.append((kind, value))
        pos = match.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return out


def resolve(record: dict[str, Any], path: str) -> Any:
    value: Any = record
    for part in path.split("."):
        if isinstance(value, dict):
            found = value.get(part)
            if found is None:  # field names are case-insensitive
                lower = part.lower()
                found = next((v for k, v in value.items() if k.lower() == lower), None)
            value = found
        else:
            return None
    return value


def _normal(value: Any, like: Any) -> Any:
    """Bring a record's value to the type of the literal it is compared with."""
    if value is None or like is None:
        return value
    if isinstance(like, datetime):
        if isinstance(value, str):
            moment = parse_ms_json(value)
            if moment is None:
                try:
                    moment = datetime.fromisoformat(value)
                except ValueError:
                    return None
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        return None
    if isinstance(like, bool):
        return value if isinstance(value, bool) else str(value).lower() == "true"
    if isinstance(like, Decimal):
        try:
            return Decimal(str(value))
        except InvalidOperation:
            return None
    return str(value).lower()


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.pos = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token is None or (value is not None and token[1] != value):
            raise QueryError(f"expected {value or 'more'} in the where clause")
        self.pos += 1
        return token

    def parse(self) -> Predicate:
        predicate = self.or_()
        if self.peek() is not None:
            raise QueryError(f"unexpected {self.peek()[1]!r} in the where clause")  # type: ignore[index]
        return predicate

    def or_(self) -> Predicate:
        parts = [self.and_()]
        while self.peek() == ("op", "||"):
            self.take()
            parts.append(self.and_())
        return parts[0] if len(parts) == 1 else (lambda r: any(p(r) for p in parts))

    def and_(self) -> Predicate:
        parts = [self.unary()]
        while self.peek() == ("op", "&&"):
            self.take()
            parts.append(self.unary())
        return parts[0] if len(parts) == 1 else (lambda r: all(p(r) for p in parts))

    def unary(self) -> Predicate:
        if self.peek() == ("op", "!"):
            self.take()
            inner = self.unary()
            return lambda r: not inner(r)
        if self.peek() == ("op", "("):
            self.take()
            inner = self.or_()
            self.take(")")
            return inner
        return self.comparison()

    def literal(self) -> Any:
        kind, value = self.take()
        if kind == "str":
            return bytes(value[1:-1], "utf-8").decode("unicode_escape")
        if kind == "num":
            return Decimal(value)
        if kind == "id":
            word = value.lower()
            if word in ("true", "false"):
                return word == "true"
            if word == "null":
                return None
            if word in ("guid", "datetime", "datetimeoffset"):
                self.take("(")
                args = [self.literal()]
                while self.peek() == ("op", ","):
                    self.take()
                    args.append(self.literal())
                self.take(")")
                if word == "guid":
                    return str(args[0]).lower()
                try:
                    numbers = [int(a) for a in args] + [0] * (6 - len(args))
                    return datetime(numbers[0], numbers[1], numbers[2], numbers[3], numbers[4],
                                    numbers[5], tzinfo=UTC)
                except (TypeError, ValueError) as exc:
                    raise QueryError(f"bad DateTime{tuple(args)}") from exc
        raise QueryError(f"unexpected {value!r} in the where clause")

    def comparison(self) -> Predicate:
        kind, ident = self.take()
        if kind != "id":
            raise QueryError(f"expected a field name, got {ident!r}")
        field, _, method = ident.rpartition(".")
        transform: Callable[[Any], Any] = lambda v: v  # noqa: E731
        if field and method.lower() in _METHODS and self.peek() == ("op", "("):
            self.take("(")
            name = method.lower()
            if name in ("tolower", "toupper"):
                self.take(")")
                transform = lambda v: v if v is None else str(v).lower()  # noqa: E731
            else:
                needle = str(self.literal()).lower()
                self.take(")")
                test = {"contains": lambda s: needle in s, "startswith": lambda s: s.startswith(needle),
                         "endswith": lambda s: s.endswith(needle)}[name]
                path = field
                return lambda r: (v := resolve(r, path)) is not None and test(str(v).lower())
            path = field
        else:
            path = ident
        token = self.peek()
        if token is None or token[1] not in ("==", "!=", ">", "<", ">=", "<="):
            if token is None or token[1] in ("&&", "||", ")"):  # a bare boolean field
                return lambda r: resolve(r, path) is True
            raise QueryError(f"expected a comparison after {ident!r}")
        op = self.take()[1]
        right = self.literal()
        if isinstance(right, str):
            right = right.lower()

        def check(record: dict[str, Any]) -> bool:
            left = _normal(transform(resolve(record, path)), right)
            if op == "==":
                return bool(left == right) if right is not None else left in (None, "")
            if op == "!=":
                return bool(left != right) if right is not None else left not in (None, "")
            if left is None or right is None:
                return False
            try:
                return bool({">": left > right, "<": left < right, ">=": left >= right,
                             "<=": left <= right}[op])
            except TypeError:
                return False

        return check


def compile_where(text: str) -> Predicate:
    return _Parser(text).parse()


def sort_records(records: list[dict[str, Any]], order: str) -> list[dict[str, Any]]:
    """``order=Name ASC,UpdatedDateUTC DESC`` (stable, last key applied first)."""
    keys = []
    for part in order.split(","):
        bits = part.split()
        if not bits:
            continue
        if len(bits) > 2 or (len(bits) == 2 and bits[1].upper() not in ("ASC", "DESC")):
            raise QueryError(f"bad order {part!r}")
        keys.append((bits[0], len(bits) == 2 and bits[1].upper() == "DESC"))
    out = list(records)
    for path, desc in reversed(keys):
        out.sort(key=lambda r, p=path: _sort_key(resolve(r, p)), reverse=desc)  # type: ignore[misc]
    return out


def _sort_key(value: Any) -> tuple[int, Any]:
    if value is None:
        return (0, "")
    if isinstance(value, bool):
        return (1, int(value))
    if isinstance(value, (int, float, Decimal)):
        return (1, Decimal(str(value)))
    if isinstance(value, str):
        moment = parse_ms_json(value)
        if moment is not None:
            return (1, Decimal(str(moment.timestamp())))
        return (2, value.lower())
    return (3, str(value))
