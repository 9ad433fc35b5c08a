"""Xero webhook bodies: signature check, the intent-to-receive rule, and events (pure; no I/O).

Xero signs the raw body: ``x-xero-signature`` = base64(HMAC-SHA256(webhook key, raw bytes)). The
endpoint must answer 401 to a wrong signature and 200 with an empty body to a right one, within 5
seconds — the intent-to-receive check Xero runs when the webhook is created or changed is exactly
this rule applied to bodies with no events (xero-api.md §7). Events are thin (what changed, not
how): the sync re-reads each resource, and a redelivery is recognised by ``Event.key``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from crm_qbo_plugin.xero.timestamps import parse_timestamp

__all__ = ["CATEGORIES", "Delivery", "Event", "NoticeError", "intent_to_receive_status",
           "parse_delivery", "signature_ok"]

CATEGORIES = frozenset({"CONTACT", "INVOICE"})  # what the sync applies; others are ignored
EVENT_TYPES = frozenset({"CREATE", "UPDATE"})
_ENTROPY = re.compile(r"^[A-Za-z0-9]{1,64}$")


class NoticeError(ValueError):
    """The (authentic) body is not a Xero webhook payload; the message says what is wrong."""


@dataclass(frozen=True)
class Event:
    tenant_id: str
    category: str  # CONTACT | INVOICE (others are dropped by ``parse_delivery``)
    event_type: str  # CREATE | UPDATE
    resource_id: str
    event_date: datetime  # aware, UTC
    resource_url: str = ""
    tenant_type: str = "ORGANISATION"

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        """Identical for a redelivery of this event, different for any other change."""
        return (self.tenant_id, self.category, self.resource_id, self.event_type,
                self.event_date.isoformat())


@dataclass(frozen=True)
class Delivery:
    events: tuple[Event, ...]
    first_sequence: int
    last_sequence: int
    entropy: str
    ignored: int = 0  # events of categories the sync does not apply (e.g. CREDITNOTE)

    @property
    def is_intent_to_receive(self) -> bool:
        return not self.events and not self.ignored


def signature_ok(raw_body: bytes, header_value: str | None, webhook_key: str) -> bool:
    """Constant-time check of ``x-xero-signature`` against the raw body."""
    if not header_value or not webhook_key:
        return False
    expected = base64.b64encode(hmac.new(webhook_key.encode("utf-8"), raw_body,
                                         hashlib.sha256).digest())
    return hmac.compare_digest(expected, header_value.strip().encode("ascii", "replace"))


def intent_to_receive_status(raw_body: bytes, header_value: str | None, webhook_key: str) -> int:
    """The HTTP status for any delivery, the intent-to-receive ones included: 200 or 401."""
    return 200 if signature_ok(raw_body, header_value, webhook_key) else 401


def _guid(value: Any, name: str) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise NoticeError(f"{name} is not a GUID") from None


def _event(raw: Any, index: int) -> Event | None:
    if not isinstance(raw, dict):
        raise NoticeError(f"events[{index}] is not an object")
    category, event_type = raw.get("eventCategory"), raw.get("eventType")
    if not isinstance(category, str) or not isinstance(event_type, str):
        raise NoticeError(f"events[{index}] has no eventCategory or eventType")
    if category not in CATEGORIES:
        return None
    if event_type not in EVENT_TYPES:
        raise NoticeError(f"events[{index}].eventType {event_type[:20]!r} is not CREATE or UPDATE")
    stamp = raw.get("eventDateUtc")
    if not isinstance(stamp, str):
        raise NoticeError(f"events[{index}] has no eventDateUtc")
    try:
        when = parse_timestamp(stamp)
    except ValueError:
        raise NoticeError(f"events[{index}].eventDateUtc is not a date") from None
    url = raw.get("resourceUrl")
    return Event(
        tenant_id=_guid(raw.get("tenantId"), f"events[{index}].tenantId"),
        category=category,
        event_type=event_type,
        resource_id=_guid(raw.get("resourceId"), f"events[{index}].resourceId"),
        event_date=when,
        resource_url=url if isinstance(url, str) and len(url) <= 2000 else "",
        tenant_type=str(raw.get("tenantType") or "ORGANISATION")[:32],
    )


def parse_delivery(raw_body: bytes) -> Delivery:
    """The events of a verified body, in body order; ``NoticeError`` if it is not Xero's shape."""
    try:
        payload = json.loads(raw_body)
    except (ValueError, UnicodeDecodeError):
        raise NoticeError("the webhook body is not JSON") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("events"), list):
        raise NoticeError("the webhook body has no events list")
    first, last = payload.get("firstEventSequence"), payload.get("lastEventSequence")
    if not (isinstance(first, int) and isinstance(last, int) and not isinstance(first, bool)
            and not isinstance(last, bool) and 0 <= first <= last):
        raise NoticeError("firstEventSequence and lastEventSequence must be whole numbers, "
                          "first ≤ last")
    entropy = payload.get("entropy")
    if not isinstance(entropy, str) or not _ENTROPY.match(entropy):
        raise NoticeError("entropy must be 1 to 64 letters or digits")
    parsed = [_event(raw, index) for index, raw in enumerate(payload["events"])]
    events = tuple(e for e in parsed if e is not None)
    return Delivery(events, first, last, entropy, ignored=len(parsed) - len(events))
