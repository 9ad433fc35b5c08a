"""The one outbound decision (outbound/decision.py): push, skip with a reason, or ignore with a reason."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from crm_qbo_plugin.host import Invoice, InvoiceStatus, LineItem, Origin
from crm_qbo_plugin.outbound.decision import (
    BEFORE_CONNECTED,
    ECHO_REASON,
    NOT_CONNECTED,
    NOT_SENT,
    PUSH,
    Action,
    Decision,
    batchable,
    first_invoice_push,
    gate,
    sync_window,
)

CONNECTED = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
LATER = CONNECTED + timedelta(hours=1)


def _invoice(**changes) -> Invoice:
    values = {"id": "inv1", "contact_id": "c1", "number": None, "status": InvoiceStatus.SENT, "currency": "USD",
              "issue_date": date(2026, 6, 2), "due_date": None,
              "lines": (LineItem(name="Consulting", quantity=Decimal(1), unit_price=Decimal("10.00")),),
              "total": Decimal("10.00"), "sent_at": LATER}
    values.update(changes)
    return Invoice(**values)


def test_the_gate_skips_echoes_disconnected_tenants_and_events_before_the_connection():
    assert gate(Origin.QBO.value, True, CONNECTED, LATER) == Decision(Action.SKIP, ECHO_REASON)
    assert gate(Origin.CRM.value, False, CONNECTED, LATER) == Decision(Action.SKIP, NOT_CONNECTED)
    assert gate(Origin.CRM.value, True, CONNECTED, CONNECTED - timedelta(seconds=1)) == Decision(Action.SKIP, BEFORE_CONNECTED)
    assert gate(Origin.CRM.value, True, CONNECTED, LATER) == PUSH


def test_a_first_push_waits_for_sending_and_ignores_what_lies_before_the_window():
    assert first_invoice_push(_invoice(sent_at=None), CONNECTED, None) == Decision(Action.SKIP, NOT_SENT)
    assert first_invoice_push(_invoice(sent_at=CONNECTED - timedelta(days=1)), CONNECTED, None) == Decision(
        Action.IGNORE, "sent before QuickBooks was connected (no retroactive sync); it is never pushed",
        "before_connection")
    assert first_invoice_push(_invoice(), CONNECTED, date(2026, 6, 3)) == Decision(
        Action.IGNORE, "dated before 2026-06-03, the sync start date on the QuickBooks card", "before_sync_from")
    assert first_invoice_push(_invoice(), CONNECTED, date(2026, 6, 2)) == PUSH
    assert sync_window(LATER, date(2026, 6, 2), None, None, "taken") == PUSH


def test_a_batch_takes_only_plain_first_creates_in_the_home_currency():
    assert batchable(_invoice(), CONNECTED, None, "USD", None)
    assert not batchable(None, CONNECTED, None, "USD", None)
    assert not batchable(_invoice(origin=Origin.QBO), CONNECTED, None, "USD", None)
    assert not batchable(_invoice(status=InvoiceStatus.VOID), CONNECTED, None, "USD", None)
    assert not batchable(_invoice(sent_at=None), CONNECTED, None, "USD", None)
    assert not batchable(_invoice(sent_at=CONNECTED - timedelta(days=1)), CONNECTED, None, "USD", None)
    assert not batchable(_invoice(currency="EUR"), CONNECTED, None, "USD", None)
    assert not batchable(_invoice(), CONNECTED, None, "USD", "multicurrency is off in QuickBooks")
