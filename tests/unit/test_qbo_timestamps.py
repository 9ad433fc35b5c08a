"""Every QBO timestamp form parses to an aware UTC datetime; outgoing ones carry an offset."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from crm_qbo_plugin.qbo.timestamps import format_changed_since, parse_date, parse_timestamp


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2015-07-23T10:58:12-07:00", datetime(2015, 7, 23, 17, 58, 12, tzinfo=UTC)),
        ("2015-10-05T14:42:19-0700", datetime(2015, 10, 5, 21, 42, 19, tzinfo=UTC)),
        ("2025-09-08T20:52:31.657Z", datetime(2025, 9, 8, 20, 52, 31, 657000, tzinfo=UTC)),
        ("2025-11-12T21:31:25.179851517Z", datetime(2025, 11, 12, 21, 31, 25, 179851, tzinfo=UTC)),
        ("2015-08-07T05:35:56.791-07:00", datetime(2015, 8, 7, 12, 35, 56, 791000, tzinfo=UTC)),
        ("2016-04-15T09:01:18+05:30", datetime(2016, 4, 15, 3, 31, 18, tzinfo=UTC)),
        ("2015-11-28", datetime(2015, 11, 28, tzinfo=UTC)),
        ("2015-03-01T00:00:00", datetime(2015, 3, 1, tzinfo=UTC)),
    ],
)
def test_parse_strings(text: str, expected: datetime) -> None:
    parsed = parse_timestamp(text)
    assert parsed == expected
    assert parsed.tzinfo is UTC


def test_epoch_milliseconds_from_401_body() -> None:
    assert parse_timestamp(1533811101733) == datetime(2018, 8, 9, 10, 38, 21, 733000, tzinfo=UTC)
    assert parse_timestamp(1533811101) == datetime(2018, 8, 9, 10, 38, 21, tzinfo=UTC)


def test_naive_values_take_default_zone() -> None:
    pacific = timezone(timedelta(hours=-8))
    assert parse_timestamp("2015-11-28", default_tz=pacific) == datetime(2015, 11, 28, 8, tzinfo=UTC)
    assert parse_timestamp(date(2015, 11, 28)) == datetime(2015, 11, 28, tzinfo=UTC)
    assert parse_timestamp(datetime(2015, 1, 1, 12)) == datetime(2015, 1, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize("bad", ["", "yesterday", "2015-13-01T00:00:00Z", "2015-01-01T00:00:00+25:00"])
def test_rejects_garbage(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_timestamp(bad)


def test_parse_date() -> None:
    assert parse_date("2015-08-25") == date(2015, 8, 25)
    assert parse_date(datetime(2015, 8, 25, 3, tzinfo=UTC)) == date(2015, 8, 25)


def test_changed_since_always_has_offset_and_floors_seconds() -> None:
    moment = datetime(2025, 1, 2, 3, 4, 5, 999999, tzinfo=timezone(timedelta(hours=-7)))
    assert format_changed_since(moment) == "2025-01-02T10:04:05+00:00"
    with pytest.raises(ValueError):
        format_changed_since(datetime(2025, 1, 2, 3, 4, 5))  # noqa: DTZ001


def test_round_trip() -> None:
    moment = datetime(2024, 2, 29, 23, 59, 59, tzinfo=UTC)
    assert parse_timestamp(format_changed_since(moment)) == moment
