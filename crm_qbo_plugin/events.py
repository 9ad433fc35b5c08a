"""Host events: what the CRM tells the plugin about changes to its records.

Events name records by id only. The worker reads the record through `CrmHost` when it runs, so it
always pushes the latest state, and no personal data sits in the outbox, in Redis or in a job.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from crm_qbo_plugin.host import Origin, PaymentSource

MAX_KEY_LENGTH = 200
MAX_ID_LENGTH = 64
# C0 and C1 control characters (NUL among them): PostgreSQL cannot store NUL in text, and no id or
# key a CRM makes needs any of them, so they are refused for every store alike.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def has_control_characters(value: str) -> bool:
    return bool(_CONTROL.search(value))


def check_id(name: str, value: object, max_length: int = MAX_ID_LENGTH) -> str:
    """`value` if it is a usable id or key; else EventError naming the field."""
    if not isinstance(value, str) or not value.strip() or len(value) > max_length:
        raise EventError(f"{name}: must be 1 to {max_length} characters")
    if has_control_characters(value):
        raise EventError(f"{name}: must not contain control characters")
    return value


class EventType(enum.StrEnum):
    CONTACT_CREATED = "contact.created"
    CONTACT_UPDATED = "contact.updated"
    PAYMENT_RECEIVED = "payment.received"
    INVOICE_SENT = "invoice.sent"
    INVOICE_UPDATED = "invoice.updated"
    INVOICE_VOIDED = "invoice.voided"
    INVOICE_DELETED = "invoice.deleted"


class EventError(ValueError):
    """A host event that cannot be accepted; the message names the field."""


@dataclass(frozen=True)
class HostEvent:
    """One change in the CRM.

    `key` is the host's idempotency key for the event (its audit or event id): publishing the same
    key twice for a tenant records one outbox row. `source` is required for payments.
    """

    type: EventType
    subject_id: str
    key: str
    origin: Origin = Origin.CRM
    source: PaymentSource | None = None
    occurred_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        if not isinstance(self.type, EventType):
            raise EventError(f"type: unknown event type {self.type!r}")
        if not isinstance(self.origin, Origin):
            raise EventError(f"origin: must be one of {[o.value for o in Origin]}")
        check_id("key", self.key, MAX_KEY_LENGTH)
        check_id("subject_id", self.subject_id)
        if self.occurred_at.tzinfo is None:
            raise EventError("occurred_at: must be timezone-aware")
        if self.type is EventType.PAYMENT_RECEIVED:
            if not isinstance(self.source, PaymentSource):
                raise EventError("source: required for payment.received events")
        elif self.source is not None:
            raise EventError("source: only payment.received events carry a source")
