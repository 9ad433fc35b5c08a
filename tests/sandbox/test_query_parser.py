"""The query language parser and evaluator (pure functions)."""

from __future__ import annotations

from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from qbo_sandbox import query as q

TZ = ZoneInfo("America/Los_Angeles")


def test_full_statement() -> None:
    parsed = q.parse("select * from Customer where DisplayName = 'Adam\\'s Candy' AND Balance >= 10.5 "
                     "ORDER BY DisplayName DESC, Id STARTPOSITION 11 MAXRESULTS 5")
    assert parsed == q.Query(
        entity="Customer",
        conditions=(q.Condition(("DisplayName",), "=", "Adam's Candy"),
                    q.Condition(("Balance",), ">=", Decimal("10.5"))),
        order_by=((("DisplayName",), True), (("Id",), False)),
        start_position=11, max_results=5,
    )


def test_keywords_case_insensitive_and_orderby_spelling() -> None:
    one = q.parse("SELECT * FROM Invoice WHERE DocNumber = '1' ORDERBY TxnDate")
    two = q.parse("sElEcT * fRoM Invoice wHeRe DocNumber = '1' order by TxnDate asc")
    assert one == two
    assert one.order_by == ((("TxnDate",), False),)


def test_count_extra_fields_in_like_booleans_and_dotted() -> None:
    assert q.parse("SELECT COUNT(*) FROM Item").count is True
    assert q.parse("SELECT *, Sku FROM Item").extra_fields == ("Sku",)
    parsed = q.parse("select * from Customer where Id in ('1', '2', 3) and Active = false "
                     "and DisplayName like '%a\\\\b%' and MetaData.LastUpdatedTime > '2015-03-01'")
    assert parsed.conditions == (
        q.Condition(("Id",), "in", ("1", "2", Decimal(3))),
        q.Condition(("Active",), "=", False),
        q.Condition(("DisplayName",), "like", "%a\\b%"),
        q.Condition(("MetaData", "LastUpdatedTime"), ">", "2015-03-01"),
    )
    assert parsed.max_results == 100 and parsed.start_position == 1


@pytest.mark.parametrize("text,detail", [
    ("select * from Customer where A = 1 OR B = 2",
     'QueryParserError: Encountered " <OR> "OR "" at line 1, column 36.'),
    ("select * from Customer where DisplayName = 'open", None),
    ("select * from Customer where DisplayName = ’x’", None),
    ("select * from", "QueryParserError: Encountered <EOF> at line 1, column 14."),
    ("select * from Customer group by Id", None),
    ("select * from Customer where A <> 1", None),
    ("", None),
])
def test_parse_errors_are_4000(text: str, detail: str | None) -> None:
    with pytest.raises(q.QueryError) as err:
        q.parse(text)
    assert err.value.code == 4000
    assert err.value.message == "Error parsing query"
    if detail:
        assert err.value.detail == detail


@pytest.mark.parametrize("text,detail", [
    ("select * from Customer startposition 0",
     "QueryValidationError: value 0 is too small. Min allowed value is 1"),
    ("select * from Customer maxresults 1001",
     "QueryValidationError: value 1001 is too large. Max allowed value is 1000"),
])
def test_paging_limits_are_4001(text: str, detail: str) -> None:
    with pytest.raises(q.QueryError) as err:
        q.parse(text)
    assert (err.value.code, err.value.detail, err.value.message) == (4001, detail, "Invalid query")


def test_unknown_property_is_4001() -> None:
    parsed = q.parse("select * from Customer where Shoe = 'x'")
    with pytest.raises(q.QueryError) as err:
        q.validate(parsed, {"DisplayName", "MetaData"})
    assert err.value.code == 4001
    assert err.value.detail == "QueryValidationError: Property Shoe not found for Entity Customer"
    with pytest.raises(q.QueryError):
        q.validate(q.parse("select * from Customer orderby MetaData.Foo"), {"MetaData"})


ROWS = [
    {"Id": "1", "DisplayName": "Alpha", "Balance": Decimal("5.00"), "Active": True,
     "PrimaryEmailAddr": {"Address": "A@x.com"}, "CustomerRef": {"value": "7"},
     "MetaData": {"LastUpdatedTime": "2015-03-01T10:00:00-08:00"}},
    {"Id": "2", "DisplayName": "beta", "Balance": Decimal("15"), "Active": False,
     "MetaData": {"LastUpdatedTime": "2015-03-02T10:00:00-08:00"}},
    {"Id": "10", "DisplayName": "Gamma's", "Balance": Decimal("0"), "Active": True,
     "MetaData": {"LastUpdatedTime": "2015-03-03T10:00:00-08:00"}},
]


def ids(text: str) -> list[str]:
    page, _total = q.run(q.parse(text), ROWS, TZ)
    return [r["Id"] for r in page]


def test_evaluation() -> None:
    assert ids("select * from C where DisplayName = 'BETA'") == ["2"]
    assert ids("select * from C where DisplayName like 'g%'") == ["10"]
    assert ids("select * from C where DisplayName like '%\\'s'") == ["10"]
    assert ids("select * from C where Balance > '4.99'") == ["1", "2"]
    assert ids("select * from C where Balance < 5") == ["10"]
    assert ids("select * from C where Active = true") == ["1", "10"]
    assert ids("select * from C where Id in ('2', '10')") == ["2", "10"]
    assert ids("select * from C where Id > '2'") == ["10"]
    assert ids("select * from C where PrimaryEmailAddr = 'a@x.com'") == ["1"]
    assert ids("select * from C where CustomerRef = '7'") == ["1"]
    assert ids("select * from C where MetaData.LastUpdatedTime > '2015-03-02'") == ["2", "10"]
    assert ids("select * from C where Metadata.LastUpdatedTime >= "
               "'2015-03-02T18:00:00Z'") == ["2", "10"]
    assert ids("select * from C orderby DisplayName desc") == ["10", "2", "1"]
    assert ids("select * from C order by Id desc") == ["10", "2", "1"]
    assert ids("select * from C orderby Balance startposition 2 maxresults 1") == ["1"]
    assert q.run(q.parse("select count(*) from C where Balance >= 5"), ROWS, TZ) == ([], 2)


def test_intuits_metadata_spelling_is_accepted_like_qbo_does() -> None:
    from qbo_sandbox.query import parse, validate

    for spelling in ("MetaData", "Metadata", "metadata"):
        validate(parse(f"SELECT * FROM Customer WHERE {spelling}.LastUpdatedTime > '2015-03-01'"), {"MetaData", "Id"})
