"""Build QBO query-language statements with every value escaped, and page through them.

QBO's grammar is ``SELECT * | COUNT(*) FROM Entity [WHERE a op v AND ...] [ORDERBY f [ASC|DESC]]
[STARTPOSITION n] [MAXRESULTS n]`` with no OR, and string literals in single quotes where ``\\'``
escapes a quote. The backslash must be escaped first (python-quickbooks issue #319 escapes only the
apostrophe, so ``O'Brien\\`` breaks out of the literal). Non-ASCII text, typographic quotes included,
is sent as is: it is not a delimiter, and the client sends the statement as UTF-8.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from crm_qbo_plugin.qbo.timestamps import format_timestamp

__all__ = [
    "MAX_PAGE_SIZE",
    "Condition",
    "build_count",
    "build_select",
    "eq",
    "ge",
    "gt",
    "in_",
    "le",
    "like",
    "lt",
    "page_statements",
    "quote",
    "validate_name",
]

MAX_PAGE_SIZE = 1000  # QBO's ceiling for MAXRESULTS
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_OPERATORS = frozenset({"=", "<", ">", "<=", ">=", "IN", "LIKE"})


def validate_name(name: str, what: str = "name") -> str:
    """Entity and field names are spliced unquoted, so only identifiers (``MetaData.X``) pass."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"invalid QBO {what}: {name!r}")
    return name


def quote(value: Any) -> str:
    """Render a Python value as a QBO literal.

    ``str`` → ``'...'`` (backslash then apostrophe escaped), ``bool`` → ``true``/``false``,
    ``int``/``Decimal`` → a plain number, ``datetime`` (aware) → quoted ISO with offset,
    ``date`` → ``'YYYY-MM-DD'``. Floats are refused (money is Decimal), as are control characters,
    which QBO names cannot hold and its lexer rejects.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        if _CONTROL.search(value):
            raise ValueError("QBO query values cannot contain control characters (tab, newline, ...)")
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"cannot query with a non-finite number: {value}")
        return format(value, "f")
    if isinstance(value, float):
        raise TypeError("pass money and quantities as Decimal, not float")
    if isinstance(value, datetime):
        return "'" + format_timestamp(value) + "'"
    if isinstance(value, date):
        return "'" + value.isoformat() + "'"
    raise TypeError(f"cannot use a {type(value).__name__} in a QBO query")


@dataclass(frozen=True)
class Condition:
    """One ``field op value`` term; terms are joined with AND (QBO has no OR)."""

    field: str
    op: str
    value: Any

    def render(self) -> str:
        op = self.op.upper()
        if op not in _OPERATORS:
            raise ValueError(f"unsupported QBO operator {self.op!r}")
        field = validate_name(self.field, "field")
        if op == "IN":
            values = list(self.value)
            if not values:
                raise ValueError(f"IN list for {field} is empty")
            return f"{field} IN ({', '.join(quote(v) for v in values)})"
        if op == "LIKE" and not isinstance(self.value, str):
            raise TypeError("LIKE needs a string pattern")
        return f"{field} {op} {quote(self.value)}"


def eq(field: str, value: Any) -> Condition:
    return Condition(field, "=", value)


def lt(field: str, value: Any) -> Condition:
    return Condition(field, "<", value)


def le(field: str, value: Any) -> Condition:
    return Condition(field, "<=", value)


def gt(field: str, value: Any) -> Condition:
    return Condition(field, ">", value)


def ge(field: str, value: Any) -> Condition:
    return Condition(field, ">=", value)


def in_(field: str, values: Iterable[Any]) -> Condition:
    return Condition(field, "IN", tuple(values))


def like(field: str, pattern: str) -> Condition:
    """``pattern`` may use ``%`` (QBO's only wildcard); it is escaped like any string."""
    return Condition(field, "LIKE", pattern)


Where = Mapping[str, Any] | Sequence[Condition] | None


def _where_sql(where: Where) -> str:
    if not where:
        return ""
    conditions = [eq(k, v) for k, v in where.items()] if isinstance(where, Mapping) else list(where)
    return " WHERE " + " AND ".join(c.render() for c in conditions)


def _order_sql(order_by: str | None) -> str:
    if not order_by:
        return ""
    terms = []
    for term in order_by.split(","):
        words = term.split()
        if not words or len(words) > 2:
            raise ValueError(f"invalid ORDERBY term {term!r}")
        field = validate_name(words[0], "field")
        direction = words[1].upper() if len(words) == 2 else ""
        if direction not in ("", "ASC", "DESC"):
            raise ValueError(f"invalid sort direction {words[1]!r}")
        terms.append(f"{field} {direction}".rstrip())
    return " ORDERBY " + ", ".join(terms)


def build_select(
    entity: str,
    where: Where = None,
    *,
    order_by: str | None = None,
    start_position: int | None = None,
    max_results: int | None = None,
) -> str:
    """``SELECT * FROM Entity [WHERE ...] [ORDERBY ...] [STARTPOSITION n] [MAXRESULTS n]``."""
    # Names are validated identifiers and every value goes through quote(): not an injection.
    sql = f"SELECT * FROM {validate_name(entity, 'entity')}{_where_sql(where)}{_order_sql(order_by)}"  # noqa: S608
    if start_position is not None:
        if start_position < 1:
            raise ValueError("STARTPOSITION is 1-based")
        sql += f" STARTPOSITION {int(start_position)}"
    if max_results is not None:
        if not 1 <= max_results <= MAX_PAGE_SIZE:
            raise ValueError(f"MAXRESULTS must be between 1 and {MAX_PAGE_SIZE}")
        sql += f" MAXRESULTS {int(max_results)}"
    return sql


def build_count(entity: str, where: Where = None) -> str:
    """``SELECT COUNT(*) FROM Entity [WHERE ...]``."""
    return f"SELECT COUNT(*) FROM {validate_name(entity, 'entity')}{_where_sql(where)}"  # noqa: S608


def page_statements(
    entity: str,
    where: Where = None,
    *,
    order_by: str | None = None,
    page_size: int = MAX_PAGE_SIZE,
) -> Iterator[str]:
    """Yield the statements for pages 1, 2, ... (STARTPOSITION 1, 1+size, ...); caller stops."""
    position = 1
    while True:
        yield build_select(
            entity, where, order_by=order_by, start_position=position, max_results=page_size
        )
        position += page_size
