"""QBO's time formats: offsets in the company's time zone, seconds in MetaData, ms in envelopes.

QBO writes every timestamp in the company's local zone (US sandboxes: Pacific), e.g.
``2015-07-23T10:58:12-07:00``. Timestamps a client sends without an offset are read in that
same zone, so a client that drops offsets sees the shift it would see against Intuit.
"""

from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

DEFAULT_TZ = "America/Los_Angeles"


def meta_time(moment: datetime, tz: ZoneInfo) -> str:
    """``2015-07-23T10:58:12-07:00`` (MetaData, DeliveryTime)."""
    return moment.astimezone(tz).isoformat(timespec="seconds")


def envelope_time(moment: datetime, tz: ZoneInfo) -> str:
    """``2015-07-23T10:58:12.099-07:00`` (the ``time`` of every response)."""
    return moment.astimezone(tz).isoformat(timespec="milliseconds")


def local_date(moment: datetime, tz: ZoneInfo) -> date:
    return moment.astimezone(tz).date()


def parse_datetime(text: str, tz: ZoneInfo) -> datetime:
    """A date or date-time as QBO accepts it; no offset means the company's zone.

    Raises ValueError for anything else.
    """
    value = text.strip()
    if not value:
        raise ValueError("empty date")
    if len(value) == 10:
        return datetime.combine(date.fromisoformat(value), time(0, 0), tzinfo=tz)
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz)
    return parsed


def parse_date(text: str) -> date:
    """``YYYY-MM-DD`` (TxnDate, DueDate); raises ValueError otherwise."""
    value = text.strip()
    if len(value) != 10:
        raise ValueError(f"not a date: {text!r}")
    return date.fromisoformat(value)
