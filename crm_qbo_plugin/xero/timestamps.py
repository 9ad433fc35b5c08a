"""Xero's date formats: MS-JSON ``/Date(1551916800000+0000)/`` in answers, ISO in webhooks and
``UpdatedDateUTCString``, RFC 1123 for ``If-Modified-Since`` (xero-api.md §2, §4)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone
from email.utils import format_datetime

__all__ = ["format_if_modified_since", "parse_date", "parse_timestamp"]

_MS_JSON = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")


def parse_timestamp(value: str) -> datetime:
    """An aware UTC datetime from MS-JSON or ISO 8601 (a zone-less ISO time is UTC, as Xero's are)."""
    text = value.strip()
    match = _MS_JSON.match(text)
    if match:
        # The milliseconds are UTC already; the offset only says which zone to show it in.
        return datetime.fromtimestamp(int(match.group(1)) / 1000, tz=UTC)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"not a Xero timestamp: {value[:40]!r}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_date(value: str) -> date:
    """A calendar date from MS-JSON (midnight UTC of the day) or ``YYYY-MM-DD[THH:MM:SS]``."""
    match = _MS_JSON.match(value.strip())
    if match:
        offset = match.group(2)
        moment = datetime.fromtimestamp(int(match.group(1)) / 1000, tz=UTC)
        if offset:
            sign = 1 if offset[0] == "+" else -1
            moment = moment.astimezone(timezone(sign * timedelta(hours=int(offset[1:3]),
                                                                 minutes=int(offset[3:]))))
        return moment.date()
    return date.fromisoformat(value.strip()[:10])


def format_if_modified_since(moment: datetime) -> str:
    """RFC 1123 in GMT, to the second (what pyxero sends and HTTP defines)."""
    if moment.tzinfo is None:
        raise ValueError("If-Modified-Since needs an aware datetime")
    return format_datetime(moment.astimezone(UTC).replace(microsecond=0), usegmt=True)
