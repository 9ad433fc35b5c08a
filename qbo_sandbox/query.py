"""QBO's SQL-like query language: parse a statement, then filter, sort and page entity dicts.

Grammar (QBO data-queries page)::

    SELECT * | COUNT(*) | *, Field... FROM Entity
      [WHERE cond AND cond ...] [ORDER BY | ORDERBY f [ASC|DESC], ...]
      [STARTPOSITION n] [MAXRESULTS n]
    cond := Field (= | < | > | <= | >=) value | Field IN (value, ...) | Field LIKE 'a%'

Keywords are case-insensitive, entity and property names are case-sensitive, there is no OR.
Parse errors are code 4000 ("Error parsing query"), semantic ones 4001 ("Invalid query").
String comparisons are case-insensitive (QBO's name fields behave so) [inferred].
Pure: no I/O, no sandbox state.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from qbo_sandbox.timefmt import parse_datetime

DEFAULT_MAX_RESULTS = 100
MAX_MAX_RESULTS = 1000
KEYWORDS = frozenset(
    {"select", "from", "where", "and", "or", "order", "orderby", "by", "asc", "desc",
     "startposition", "maxresults", "in", "like", "count", "not", "true", "false"}
)


class QueryError(Exception):
    """A rejected statement: ``code`` 4000 (parse) or 4001 (validation)."""

    def __init__(self, code: int, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail

    @property
    def message(self) -> str:
        return "Error parsing query" if self.code == 4000 else "Invalid query"


@dataclass(frozen=True)
class Condition:
    path: tuple[str, ...]
    op: str  # "=", "<", ">", "<=", ">=", "in", "like"
    value: Any  # str | Decimal | bool | tuple of those


@dataclass(frozen=True)
class Query:
    entity: str
    count: bool = False
    conditions: tuple[Condition, ...] = ()
    order_by: tuple[tuple[tuple[str, ...], bool], ...] = ()  # (path, descending)
    start_position: int = 1
    max_results: int = DEFAULT_MAX_RESULTS
    extra_fields: tuple[str, ...] = field(default_factory=tuple)

    def constrains(self, name: str) -> bool:
        return any(c.path[0] == name for c in self.conditions)


@dataclass(frozen=True)
class _Tok:
    kind: str  # word, str, num, op, punct, eof
    text: str
    value: Any
    col: int


_TOKEN = re.compile(
    r"""(?P<ws>\s+)
      | (?P<str>'(?:\\.|[^'\\])*')
      | (?P<num>-?\d+(?:\.\d+)?)
      | (?P<word>[A-Za-z_][A-Za-z0-9_.]*)
      | (?P<op><=|>=|<>|!=|=|<|>)
      | (?P<punct>[(),*])
    """,
    re.VERBOSE,
)


def _unescape(body: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            out.append(body[i + 1])
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def tokenize(text: str) -> list[_Tok]:
    tokens: list[_Tok] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            if text[pos] == "'":
                raise QueryError(
                    4000,
                    f"QueryParserError: Lexical error at line 1, column {pos + 1}.  "
                    f"Encountered: <EOF> after : \"{text[pos:]}\"",
                )
            raise QueryError(
                4000,
                f"QueryParserError: Lexical error at line 1, column {pos + 1}.  "
                f"Encountered: \"{text[pos]}\"",
            )
        kind = m.lastgroup or ""
        raw = m.group(0)
        if kind == "str":
            tokens.append(_Tok("str", raw, _unescape(raw[1:-1]), pos + 1))
        elif kind == "num":
            tokens.append(_Tok("num", raw, Decimal(raw), pos + 1))
        elif kind in ("word", "op", "punct"):
            tokens.append(_Tok(kind, raw, raw, pos + 1))
        pos = m.end()
    tokens.append(_Tok("eof", "<EOF>", None, len(text) + 1))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = tokenize(text)
        self.i = 0

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def is_kw(self, *words: str) -> bool:
        tok = self.peek()
        return tok.kind == "word" and tok.text.lower() in words

    def fail(self, tok: _Tok | None = None) -> QueryError:
        tok = tok or self.peek()
        if tok.kind == "eof":
            shown = '<EOF>'
        elif tok.kind == "word" and tok.text.lower() in KEYWORDS:
            shown = f'" <{tok.text.upper()}> "{tok.text} ""'
        else:
            shown = f'" "{tok.text}" "'
        return QueryError(
            4000, f"QueryParserError: Encountered {shown} at line 1, column {tok.col}."
        )

    def expect_kw(self, word: str) -> None:
        if not self.is_kw(word):
            raise self.fail()
        self.take()

    def expect_punct(self, ch: str) -> None:
        tok = self.peek()
        if tok.kind != "punct" or tok.text != ch:
            raise self.fail()
        self.take()

    def ident(self) -> str:
        tok = self.peek()
        if tok.kind != "word" or tok.text.lower() in KEYWORDS:
            raise self.fail()
        self.take()
        return tok.text

    def integer(self) -> int:
        tok = self.peek()
        if tok.kind != "num" or "." in tok.text:
            raise self.fail()
        self.take()
        return int(tok.text)

    def value(self) -> Any:
        tok = self.peek()
        if tok.kind in ("str", "num"):
            self.take()
            return tok.value
        if tok.kind == "word" and tok.text.lower() in ("true", "false"):
            self.take()
            return tok.text.lower() == "true"
        raise self.fail()

    def parse(self) -> Query:
        self.expect_kw("select")
        count = False
        extra: list[str] = []
        if self.is_kw("count"):
            self.take()
            self.expect_punct("(")
            self.expect_punct("*")
            self.expect_punct(")")
            count = True
        else:
            tok = self.peek()
            if tok.kind == "punct" and tok.text == "*":
                self.take()
            else:
                extra.append(self.ident())
            while self.peek().kind == "punct" and self.peek().text == ",":
                self.take()
                extra.append(self.ident())
        self.expect_kw("from")
        entity = self.ident()
        conditions: list[Condition] = []
        if self.is_kw("where"):
            self.take()
            conditions.append(self.condition())
            while self.is_kw("and", "or"):
                if self.is_kw("or"):
                    raise self.fail()
                self.take()
                conditions.append(self.condition())
        order: list[tuple[tuple[str, ...], bool]] = []
        if self.is_kw("order", "orderby"):
            if self.take().text.lower() == "order":
                self.expect_kw("by")
            while True:
                path = tuple(self.ident().split("."))
                desc = False
                if self.is_kw("asc", "desc"):
                    desc = self.take().text.lower() == "desc"
                order.append((path, desc))
                if self.peek().kind == "punct" and self.peek().text == ",":
                    self.take()
                    continue
                break
        start: int | None = None
        maximum: int | None = None
        while self.is_kw("startposition", "maxresults"):
            word = self.take().text.lower()
            number = self.integer()
            if word == "startposition":
                start = number
            else:
                maximum = number
        if self.peek().kind != "eof":
            raise self.fail()
        if start is not None and start < 1:
            raise QueryError(
                4001, f"QueryValidationError: value {start} is too small. Min allowed value is 1"
            )
        if maximum is not None and maximum < 1:
            raise QueryError(
                4001, f"QueryValidationError: value {maximum} is too small. Min allowed value is 1"
            )
        if maximum is not None and maximum > MAX_MAX_RESULTS:
            raise QueryError(
                4001,
                f"QueryValidationError: value {maximum} is too large. "
                f"Max allowed value is {MAX_MAX_RESULTS}",
            )
        return Query(
            entity=entity,
            count=count,
            conditions=tuple(conditions),
            order_by=tuple(order),
            start_position=start or 1,
            max_results=maximum or DEFAULT_MAX_RESULTS,
            extra_fields=tuple(extra),
        )

    def condition(self) -> Condition:
        path = tuple(self.ident().split("."))
        tok = self.peek()
        if tok.kind == "op":
            if tok.text in ("<>", "!="):
                raise self.fail()
            self.take()
            return Condition(path, tok.text, self.value())
        if self.is_kw("in"):
            self.take()
            self.expect_punct("(")
            values = [self.value()]
            while self.peek().kind == "punct" and self.peek().text == ",":
                self.take()
                values.append(self.value())
            self.expect_punct(")")
            return Condition(path, "in", tuple(values))
        if self.is_kw("like"):
            self.take()
            tok = self.peek()
            if tok.kind != "str":
                raise self.fail()
            self.take()
            return Condition(path, "like", tok.value)
        raise self.fail()


def parse(text: str) -> Query:
    """Parse a statement; raises :class:`QueryError`."""
    if not text or not text.strip():
        raise QueryError(4000, "QueryParserError: Encountered <EOF> at line 1, column 1.")
    return _Parser(text).parse()


# ---------------------------------------------------------------------------- evaluation

META_FIELDS = frozenset({"CreateTime", "LastUpdatedTime"})


def validate(query: Query, known_fields: Iterable[str]) -> None:
    """4001 when a WHERE/ORDER BY property does not exist on the entity."""
    known = set(known_fields)
    paths = [c.path for c in query.conditions] + [p for p, _ in query.order_by]
    for path in paths:
        name = path[0]
        is_meta = name.lower() == "metadata"  # QBO takes "MetaData" and Intuit's own "Metadata"
        bad = name not in known and not is_meta
        if not bad and is_meta:
            bad = len(path) != 2 or path[1] not in META_FIELDS
        if bad:
            raise QueryError(
                4001,
                f"QueryValidationError: Property {'.'.join(path)} not found for Entity {query.entity}",
            )


def _resolve(entity: dict[str, Any], path: tuple[str, ...]) -> Any:
    current: Any = entity
    for part in path:
        if not isinstance(current, dict):
            return None
        if part in current:
            current = current[part]
        else:
            # Intuit's own sample writes "Metadata.LastUpdatedTime"
            match = next((k for k in current if k.lower() == part.lower()), None)
            if match is None:
                return None
            current = current[match]
    if isinstance(current, dict):
        for key in ("value", "Address", "FreeFormNumber", "URI"):
            if key in current:
                return current[key]
        return None
    return current


def _like(pattern: str) -> re.Pattern[str]:
    parts = [re.escape(p) for p in pattern.split("%")]
    return re.compile("^" + ".*".join(parts) + "$", re.IGNORECASE | re.DOTALL)


class _Cmp:
    """Coerces a literal to the stored value's type once, then compares."""

    def __init__(self, cond: Condition, tz: ZoneInfo) -> None:
        self.cond = cond
        self.tz = tz
        self.is_meta = cond.path[0].lower() == "metadata"
        self.is_id = cond.path == ("Id",) or (len(cond.path) == 1 and cond.path[0].endswith("Ref"))
        self.like = _like(cond.value) if cond.op == "like" else None
        values = cond.value if cond.op == "in" else (cond.value,)
        self.values = values

    def coerce(self, stored: Any, literal: Any) -> tuple[Any, Any] | None:
        if self.is_meta:
            try:
                left = parse_datetime(str(stored), self.tz)
                right = parse_datetime(str(literal), self.tz)
            except ValueError:
                return None
            return left, right
        if isinstance(stored, bool):
            if isinstance(literal, bool):
                return stored, literal
            return stored, str(literal).strip().lower() == "true"
        if isinstance(stored, (int, float, Decimal)):
            try:
                return Decimal(str(stored)), Decimal(str(literal).strip())
            except InvalidOperation:
                return None
        text = str(stored)
        lit = str(literal) if not isinstance(literal, bool) else str(literal).lower()
        if self.is_id and text.isdigit() and lit.isdigit():
            return int(text), int(lit)
        return text.casefold(), lit.casefold()

    def __call__(self, entity: dict[str, Any]) -> bool:
        stored = _resolve(entity, self.cond.path)
        if stored is None:
            return False
        op = self.cond.op
        if self.like is not None:
            return bool(self.like.match(str(stored)))
        for literal in self.values:
            pair = self.coerce(stored, literal)
            if pair is None:
                continue
            left, right = pair
            if op in ("=", "in"):
                if left == right:
                    return True
            elif op == "<":
                return bool(left < right)
            elif op == ">":
                return bool(left > right)
            elif op == "<=":
                return bool(left <= right)
            elif op == ">=":
                return bool(left >= right)
        return False


def matcher(query: Query, tz: ZoneInfo) -> Callable[[dict[str, Any]], bool]:
    """A predicate that is true for entities satisfying every condition."""
    checks = [_Cmp(c, tz) for c in query.conditions]
    if not checks:
        return lambda _e: True
    if len(checks) == 1:
        return checks[0]
    return lambda e: all(check(e) for check in checks)


def _sort_key(path: tuple[str, ...], tz: ZoneInfo) -> Callable[[dict[str, Any]], Any]:
    is_meta = path[0].lower() == "metadata"

    def key(entity: dict[str, Any]) -> Any:
        value = _resolve(entity, path)
        if value is None:
            return (1, 0, "")
        if is_meta:
            return (0, 0, parse_datetime(str(value), tz))
        if isinstance(value, bool):
            return (0, 0, int(value))
        if isinstance(value, (int, float, Decimal)):
            return (0, 0, Decimal(str(value)))
        text = str(value)
        if text.isdigit():
            return (0, 0, int(text)) if path == ("Id",) else (0, 1, text.casefold())
        return (0, 1, text.casefold())

    return key


def run(query: Query, entities: list[dict[str, Any]], tz: ZoneInfo) -> tuple[list[dict[str, Any]], int]:
    """Filter, order and page; returns (page, total matching)."""
    keep = matcher(query, tz)
    rows = [e for e in entities if keep(e)] if query.conditions else list(entities)
    total = len(rows)
    if query.count:
        return [], total
    for path, desc in reversed(query.order_by):
        rows.sort(key=_sort_key(path, tz), reverse=desc)
    start = query.start_position - 1
    return rows[start : start + query.max_results], total


def with_condition(query: Query, cond: Condition) -> Query:
    """A copy of ``query`` with one more AND condition (e.g. the implicit Active = true)."""
    return Query(
        entity=query.entity,
        count=query.count,
        conditions=(*query.conditions, cond),
        order_by=query.order_by,
        start_position=query.start_position,
        max_results=query.max_results,
        extra_fields=query.extra_fields,
    )
