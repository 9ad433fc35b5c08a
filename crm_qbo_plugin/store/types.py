"""Column types that keep the store honest across SQLite and PostgreSQL."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect


class Provider(enum.StrEnum):
    """The accounting system a connection talks to (the value is the stored string)."""

    QUICKBOOKS = "quickbooks"
    XERO = "xero"


# Wide enough for every provider's company and record ids: a QuickBooks realm or entity id is
# digits, a Xero tenant, contact, invoice or payment id a 36-character UUID.
EXTERNAL_ID_LENGTH = 64


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on every backend.

    SQLite has no time zones; storing naive UTC and re-attaching UTC on read keeps comparisons right.
    A naive datetime is refused rather than guessed.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; attach a time zone")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def utc_column(nullable: bool = True, index: bool = False, **kwargs: Any) -> sa.Column[Any]:
    return sa.Column(UtcDateTime(), nullable=nullable, index=index, **kwargs)
