"""The automation log: trigger calls from the plugin, each recorded once per idempotency key.

The one workflow the reference CRM runs is "review_request": it writes the review request it would
e-mail to the contact into the outgoing messages.
"""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from crm_qbo_plugin import TriggerCall
from reference_crm.contacts import display_name
from reference_crm.models import AutomationLogRow, ContactRow, OutgoingMessageRow

REVIEW_REQUEST = "review_request"


def record_trigger(db: Session, call: TriggerCall) -> AutomationLogRow | None:
    """Log `call` and run its workflow, committing; None when its idempotency key was seen already."""
    # Without a key every call is distinct: give it a random one.
    key = call.idempotency_key or f"{call.trigger}:{call.contact_id}:{secrets.token_hex(8)}"
    existing = db.exec(select(AutomationLogRow).where(
        AutomationLogRow.location_id == call.tenant, AutomationLogRow.idempotency_key == key)).first()
    if existing is not None:
        return None
    entry = AutomationLogRow(location_id=call.tenant, trigger=call.trigger[:64], contact_id=call.contact_id[:64],
                             idempotency_key=key[:200], payload=_plain_dict(call.payload))
    db.add(entry)
    try:
        db.flush()
    except IntegrityError:  # a concurrent call with the same key won
        db.rollback()
        return None
    if call.trigger == REVIEW_REQUEST:
        contact = db.get(ContactRow, call.contact_id)
        if contact is not None and contact.location_id == call.tenant and contact.email:
            db.add(OutgoingMessageRow(
                location_id=call.tenant, contact_id=contact.id, to_address=contact.email, automation_id=entry.id,
                subject="How did we do?",
                body=(f"Hi {display_name(contact)},\n\nThank you for your payment. Would you take a minute to "
                      "tell us how we did? Your review helps us a lot.\n"),
            ))
    db.commit()
    return entry


def list_automation_log(db: Session, location_id: str) -> list[AutomationLogRow]:
    query = select(AutomationLogRow).where(AutomationLogRow.location_id == location_id)
    return list(db.exec(query.order_by(col(AutomationLogRow.received_at).desc(), col(AutomationLogRow.id).desc())))


def list_messages(db: Session, location_id: str) -> list[OutgoingMessageRow]:
    query = select(OutgoingMessageRow).where(OutgoingMessageRow.location_id == location_id)
    return list(db.exec(query.order_by(col(OutgoingMessageRow.created_at).desc(), col(OutgoingMessageRow.id).desc())))


def _plain_dict(payload: Any) -> dict[str, Any]:
    return {str(k): _plain(v) for k, v in dict(payload).items()}


def _plain(value: object) -> object:
    """JSON-safe copy of a payload (Decimals and dates as strings)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)
