"""QBO timestamps in, aware UTC datetimes out; CDC/query timestamps out with an explicit offset.

QBO speaks several dialects: ``2015-07-23T10:58:12-07:00`` (entities), ``2015-10-05T14:42:19-0700``
(legacy webhooks), ``2025-09-08T20:52:31.657Z`` (2025 webhooks), nanosecond fractions in CloudEvents,
plain dates ``2015-11-28`` and epoch milliseconds in 401 bodies. A timestamp sent to QBO without an
offset is read in the company's zone and silently shifts a CDC window (python-quickbooks'
``qb_datetime_format`` bug), so everything we format carries one.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo

__all__ = ["format_changed_since", "format_timestamp", "parse_date", "parse_timestamp"]

_ISO = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})"
    r"(?:[T ](?P<time>\d{2}:\d{2}(?::\d{2})?)(?:[.,](?P<frac>\d+))?"
    r"(?P<tz>Z|z|[+-]\d{2}(?::?\d{2})?)?)?$"
)
_EPOCH_MS_THRESHOLD = 100_000_000_000  # larger magnitudes are milliseconds (year 5138 in seconds)


def _offset(text: str) -> tzinfo:
    if text in ("Z", "z"):
        return UTC
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    hours = int(digits[:2])
    minutes = int(digits[2:4] or 0)
    if hours > 23 or minutes > 59:
        raise ValueError(f"bad UTC offset {text!r}")
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def parse_timestamp(value: str | int | float | datetime | date, *, default_tz: tzinfo = UTC) -> datetime:
    """Parse any QBO timestamp form into an aware datetime in UTC.

    Strings without an offset (and plain dates, read as midnight) are taken to be in ``default_tz``.
    Numbers are epoch seconds, or epoch milliseconds when too large to be seconds.
    """
    if isinstance(value, bool):
        raise TypeError("a boolean is not a timestamp")
    if isinstance(value, datetime):
        result = value if value.tzinfo is not None else value.replace(tzinfo=default_tz)
        return result.astimezone(UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=default_tz).astimezone(UTC)
    if isinstance(value, int | float):
        seconds = value / 1000 if abs(value) >= _EPOCH_MS_THRESHOLD else value
        return datetime.fromtimestamp(seconds, tz=UTC)
    if not isinstance(value, str):
        raise TypeError(f"cannot parse a timestamp from {type(value).__name__}")
    match = _ISO.match(value.strip())
    if match is None:
        raise ValueError(f"not a QBO timestamp: {value!r}")
    year, month, day = (int(part) for part in match["date"].split("-"))
    hour = minute = second = micro = 0
    if match["time"]:
        pieces = [int(part) for part in match["time"].split(":")]
        hour, minute = pieces[0], pieces[1]
        second = pieces[2] if len(pieces) > 2 else 0
    if match["frac"]:
        micro = int(match["frac"][:6].ljust(6, "0"))  # nanoseconds (CloudEvents) are truncated
    zone = _offset(match["tz"]) if match["tz"] else default_tz
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=zone).astimezone(UTC)


def parse_date(value: str | date) -> date:
    """Parse a QBO date field (``TxnDate``, ``DueDate``: ``YYYY-MM-DD``, company-local)."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(value.strip()[:10])


def format_timestamp(value: datetime) -> str:
    """Format an aware datetime as ``YYYY-MM-DDTHH:MM:SS+00:00`` (UTC, whole seconds, floor).

    Flooring to the second never moves a "changed since" bound past a change.
    """
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("QBO timestamps must be timezone-aware; a naive one is read in the company's zone")
    return value.astimezone(UTC).replace(microsecond=0).isoformat()


def format_changed_since(value: datetime) -> str:
    """The CDC ``changedSince`` parameter: always with an explicit offset."""
    return format_timestamp(value)
