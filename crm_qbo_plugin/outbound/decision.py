"""Whether a CRM change goes to QuickBooks: one pure decision, used by the processor's gate, the
single invoice path, payments and the batch leader, so they can never disagree.

A decision is PUSH, SKIP (nothing to do, with why) or IGNORE (never pushed, with why: the card
shows the record as ignored with that reason). No I/O here: callers read the rows and records,
decide, then act.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, datetime

from crm_qbo_plugin.host import Invoice, InvoiceStatus, Origin

ECHO_REASON = "came from QuickBooks; it is never pushed back"
NOT_CONNECTED = "not connected to QuickBooks"
BEFORE_CONNECTED = "happened before QuickBooks was connected (no retroactive sync)"
IMPORTED = "imported from QuickBooks: QuickBooks owns it and CRM edits are not pushed"
NOT_SENT = "not sent yet: an invoice reaches QuickBooks when it is sent"
NOT_EXPORTED = ("not exported: \"Export invoices automatically when sent\" is off on the QuickBooks card; "
                "Send to QuickBooks on the invoice exports it")


class Action(enum.StrEnum):
    PUSH = "push"
    SKIP = "skip"
    IGNORE = "ignore"
    HOLD = "hold"  # kept as "not synced" with a way out (e.g. Send to QuickBooks), never pushed by itself


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str | None = None
    detail: str | None = None  # for IGNORE and HOLD: why, as a code kept on the link ("before_connection" …)

    @property
    def push(self) -> bool:
        return self.action is Action.PUSH


PUSH = Decision(Action.PUSH)


def skip(reason: str) -> Decision:
    return Decision(Action.SKIP, reason)


def gate(origin: str, connected: bool, connected_at: datetime | None, occurred_at: datetime) -> Decision:
    """The outbox row's first check: an echo of our own write, no connection, or an event older
    than the connection (no retroactive sync) is skipped."""
    if origin == Origin.QBO.value:
        return skip(ECHO_REASON)
    if not connected:
        return skip(NOT_CONNECTED)
    if connected_at is not None and occurred_at < connected_at:
        return skip(BEFORE_CONNECTED)
    return PUSH


def sync_window(happened_at: datetime, dated: date, connected_at: datetime | None, sync_from: date | None,
                happened: str) -> Decision:
    """A record first pushed must have `happened` (sent, taken) after the connection and be dated
    on or after the card's sync start date; else it is ignored for good."""
    if connected_at is not None and happened_at < connected_at:
        return Decision(Action.IGNORE, f"{happened} before QuickBooks was connected (no retroactive sync); "
                                       "it is never pushed", "before_connection")
    if sync_from is not None and dated < sync_from:
        return Decision(Action.IGNORE, f"dated before {sync_from.isoformat()}, the sync start date on the "
                                       "QuickBooks card", "before_sync_from")
    return PUSH


def first_invoice_push(invoice: Invoice, connected_at: datetime | None, sync_from: date | None, *,
                       export_on_send: bool = True, exported_by_hand: bool = False) -> Decision:
    """An invoice not yet in QuickBooks: drafts wait; with automatic export off, one nobody sent to
    QuickBooks by hand is held; invoices before the connection or the sync start date are ignored."""
    if invoice.sent_at is None:
        return skip(NOT_SENT)
    if not export_on_send and not exported_by_hand:
        return Decision(Action.HOLD, NOT_EXPORTED, "export_off")
    return sync_window(invoice.sent_at, invoice.issue_date, connected_at, sync_from, "sent")


def batchable(invoice: Invoice | None, connected_at: datetime | None, sync_from: date | None,
              home_currency: str, currency_problem: str | None, export_on_send: bool = True) -> bool:
    """Whether `invoice` is a plain first create a batch may send as is: from the CRM, sent, live,
    in the window, in the home currency (anything else the single path decides and words)."""
    if invoice is None or invoice.origin != Origin.CRM:
        return False
    if invoice.status in (InvoiceStatus.VOID, InvoiceStatus.DELETED):
        return False
    if not first_invoice_push(invoice, connected_at, sync_from, export_on_send=export_on_send).push:
        return False
    return currency_problem is None and invoice.currency.upper() == home_currency
