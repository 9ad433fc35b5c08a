"""The query builder escapes every value (backslash first, then apostrophe) and pages at 1000."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from crm_qbo_plugin.qbo.query import (
    Condition,
    build_count,
    build_select,
    eq,
    ge,
    gt,
    in_,
    le,
    like,
    lt,
    page_statements,
    quote,
)


@pytest.mark.parametrize(
    ("value", "literal"),
    [
        ("plain", "'plain'"),
        ("O'Brien", r"'O\'Brien'"),
        ("O'Brien\\", r"'O\'Brien\\'"),  # python-quickbooks #319: trailing backslash
        ("a\\'b", r"'a\\\'b'"),  # backslash before a quote must not swallow the escape
        ("Zoë Müller-Łukasz 山田", "'Zoë Müller-Łukasz 山田'"),
        ("Joe’s – Café", "'Joe’s – Café'"),  # typographic quote/dash are not delimiters
        ("100%", "'100%'"),
        ("", "''"),
        (True, "true"),
        (False, "false"),
        (42, "42"),
        (Decimal("300.00"), "300.00"),
        (Decimal("1E+2"), "100"),
        (date(2015, 3, 1), "'2015-03-01'"),
        (datetime(2015, 3, 1, 8, 0, tzinfo=UTC), "'2015-03-01T08:00:00+00:00'"),
    ],
)
def test_quote(value: object, literal: str) -> None:
    assert quote(value) == literal


def _unquote(literal: str) -> str:
    """What a QBO lexer reads from a quoted literal (reference implementation for the test)."""
    assert literal[0] == literal[-1] == "'"
    out, chars = [], iter(literal[1:-1])
    for ch in chars:
        if ch == "\\":
            out.append(next(chars))
        else:
            assert ch != "'", "unescaped quote ends the literal early"
            out.append(ch)
    return "".join(out)


@pytest.mark.parametrize("value", ["O'Brien\\", "\\\\'", "'", "\\", "a''b\\\\c'", "x\\' OR '1'='1"])
def test_quote_round_trips_through_a_lexer(value: str) -> None:
    assert _unquote(quote(value)) == value


@pytest.mark.parametrize("bad", [0.1, None, object(), Decimal("NaN")])
def test_quote_rejects(bad: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        quote(bad)


def test_quote_rejects_control_characters_and_naive_datetimes() -> None:
    with pytest.raises(ValueError):
        quote("two\nlines")
    with pytest.raises(ValueError):
        quote(datetime(2015, 3, 1))  # noqa: DTZ001


def test_select_by_email() -> None:
    sql = build_select("Customer", {"PrimaryEmailAddr": "o'brien@example.com"})
    assert sql == r"SELECT * FROM Customer WHERE PrimaryEmailAddr = 'o\'brien@example.com'"


def test_select_with_conditions_order_and_paging() -> None:
    sql = build_select(
        "Invoice",
        [gt("MetaData.LastUpdatedTime", datetime(2015, 3, 1, tzinfo=UTC)), in_("Id", ["1", "2"]),
         like("DocNumber", "10%"), le("TotalAmt", Decimal("9.99")), ge("Balance", 0), lt("TxnDate", date(2020, 1, 1)),
         eq("Active", True)],
        order_by="MetaData.LastUpdatedTime DESC, DocNumber",
        start_position=1001,
        max_results=1000,
    )
    assert sql == (
        "SELECT * FROM Invoice WHERE MetaData.LastUpdatedTime > '2015-03-01T00:00:00+00:00' "
        "AND Id IN ('1', '2') AND DocNumber LIKE '10%' AND TotalAmt <= 9.99 AND Balance >= 0 "
        "AND TxnDate < '2020-01-01' AND Active = true "
        "ORDERBY MetaData.LastUpdatedTime DESC, DocNumber STARTPOSITION 1001 MAXRESULTS 1000"
    )


def test_count() -> None:
    assert build_count("Customer") == "SELECT COUNT(*) FROM Customer"
    assert build_count("Customer", {"Active": False}) == "SELECT COUNT(*) FROM Customer WHERE Active = false"


@pytest.mark.parametrize(
    "call",
    [
        lambda: build_select("Customer; DROP"),
        lambda: build_select("Customer", {"Name = 'x' OR 1": "y"}),
        lambda: build_select("Customer", [Condition("Id", "OR", "1")]),
        lambda: build_select("Customer", [in_("Id", [])]),
        lambda: build_select("Customer", order_by="Id; DROP"),
        lambda: build_select("Customer", order_by="Id SIDEWAYS"),
        lambda: build_select("Customer", start_position=0),
        lambda: build_select("Customer", max_results=1001),
    ],
)
def test_builder_rejects_unsafe_input(call: object) -> None:
    with pytest.raises(ValueError):
        call()  # type: ignore[operator]


def test_page_statements() -> None:
    pages = list(itertools.islice(page_statements("Customer", {"Active": True}), 3))
    assert pages == [
        "SELECT * FROM Customer WHERE Active = true STARTPOSITION 1 MAXRESULTS 1000",
        "SELECT * FROM Customer WHERE Active = true STARTPOSITION 1001 MAXRESULTS 1000",
        "SELECT * FROM Customer WHERE Active = true STARTPOSITION 2001 MAXRESULTS 1000",
    ]
    small = list(itertools.islice(page_statements("Item", page_size=2, order_by="Name"), 2))
    assert small == [
        "SELECT * FROM Item ORDERBY Name STARTPOSITION 1 MAXRESULTS 2",
        "SELECT * FROM Item ORDERBY Name STARTPOSITION 3 MAXRESULTS 2",
    ]
