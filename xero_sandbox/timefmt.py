"""Xero's date formats: MS-JSON ``/Date(ms+0000)/`` out; ISO, RFC 1123 and MS-JSON in."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from email.utils import parsedate_to_datetime

_MS_DATE = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")


def ms_json(moment: datetime) -> str:
    """``/Date(1551981568133+0000)/`` for an aware datetime."""
    return f"/Date({int(moment.astimezone(UTC).timestamp() * 1000)}+0000)/"


def ms_json_date(day: date) -> str:
    """A calendar date as Xero writes it: midnight UTC in ms."""
    return ms_json(datetime(day.year, day.month, day.day, tzinfo=UTC))


def date_string(day: date) -> str:
    """``DateString``: ``2019-03-07T00:00:00``."""
    return f"{day.isoformat()}T00:00:00"


def iso_utc(moment: datetime) -> str:
    """``2019-03-07T17:59:28Z`` (``UpdatedDateUTCString``)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_ms_json(text: str) -> datetime | None:
    match = _MS_DATE.match(text.strip())
    if not match:
        return None
    moment = datetime.fromtimestamp(int(match.group(1)) / 1000, tz=UTC)
    return moment


def parse_date(value: object) -> date:
    """A request date: ``YYYY-MM-DD``, ``YYYY-MM-DDTHH:MM:SS`` or ``/Date(ms[±hhmm])/``.

    Raises ValueError for anything else.
    """
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"invalid date {value!r}")
    text = value.strip()
    moment = parse_ms_json(text)
    if moment is not None:
        match = _MS_DATE.match(text)
        assert match is not None
        offset = match.group(2)
        if offset:  # the calendar day in the sender's offset
            sign = 1 if offset[0] == "+" else -1
            moment += sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[3:5]))
        return moment.date()
    return datetime.fromisoformat(text[:19] if "T" in text else text[:10]).date()


def parse_if_modified_since(value: str) -> datetime:
    """ISO (naive = UTC) as xero-python sends it, or RFC 1123 as pyxero sends it."""
    text = value.strip().strip('"')
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        moment = parsedate_to_datetime(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def event_date(moment: datetime) -> str:
    """Webhook ``eventDateUtc``: ``2025-12-02T00:44:09.923``."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}"


def connection_time(moment: datetime) -> str:
    """Connection timestamps: ``2019-12-07T18:46:19.5165400`` (no zone)."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond:06d}0"
