"""What a host shows about one record on its own pages: a badge ("QuickBooks: synced · open in
QuickBooks", "failed — books closed for 2026-11-15 … · Retry") and the actions behind it."""

from __future__ import annotations

from dataclasses import dataclass

from crm_qbo_plugin.store.links import (
    CONFLICT,
    CONTACT,
    CRM_ONLY,
    DELETED,
    FAILED,
    IGNORED,
    INVOICE,
    NOT_SYNCED,
    PAYMENT,
    PENDING,
    SALES_RECEIPT,
    SYNCED,
)
from crm_qbo_plugin.store.tables import Link

LABELS: dict[str, str] = {
    SYNCED: "synced", PENDING: "sending", FAILED: "failed", CONFLICT: "totals differ", IGNORED: "ignored",
    DELETED: "removed from QuickBooks", NOT_SYNCED: "not synced", CRM_ONLY: "changed in the CRM only",
}
# What to do when a failure's message does not say it after a "; " (most do: outbound/failures.py).
GENERIC_ACTION: dict[str, str] = {
    FAILED: "fix what the reason names, then Retry",
    CONFLICT: "check the taxes and discounts mapped on the QuickBooks card, then Retry",
    NOT_SYNCED: "Retry sends it to QuickBooks",
    IGNORED: "Retry sends it to QuickBooks again",
}
RETRYABLE = frozenset({FAILED, CONFLICT, NOT_SYNCED, IGNORED})
# QuickBooks Online's own pages for a record, by kind.
WEB_PATHS: dict[str, str] = {
    CONTACT: "customerdetail?nameId=", INVOICE: "invoice?txnId=", PAYMENT: "recvpayment?txnId=",
    SALES_RECEIPT: "salesreceipt?txnId=",
}


@dataclass(frozen=True)
class RecordSync:
    """Where one CRM record stands with the location's books (QuickBooks or Xero), for the host's own pages."""

    status: str  # as the plugin API's records: synced, pending, not_synced, crm_only, failed …
    message: str | None  # the stored reason, whole
    label: str = ""  # the status in words: "synced", "failed" …
    reason: str | None = None  # why, in plain words
    action: str | None = None  # what to do about it
    qbo_url: str | None = None  # the record in QuickBooks Online, when it is there
    can_retry: bool = False  # the host offers Retry (plugin.retry_record)
    can_export: bool = False  # an invoice not exported (automatic export off): "Send to QuickBooks"
    books: str = "QuickBooks"  # the location's accounting system by name, for the host's labels

    @property
    def changed_in_crm_only(self) -> bool:
        """An imported (QuickBooks-owned) record edited, voided or deleted in the CRM only."""
        return self.status == CRM_ONLY


# A Xero record's page (go.xero.com opens the organisation the user last used; Xero has no
# deep link to a payment of its own).
XERO_PAGES: dict[str, str] = {
    CONTACT: "https://go.xero.com/Contacts/View/",
    INVOICE: "https://go.xero.com/AccountsReceivable/View.aspx?InvoiceID=",
    SALES_RECEIPT: "https://go.xero.com/AccountsReceivable/View.aspx?InvoiceID=",
}


def qbo_web_url(kind: str, qbo_id: str | None, realm_id: str | None, sandbox: bool,
                provider: str = "quickbooks") -> str | None:
    """The record's page in QuickBooks Online, or in Xero (the user's own sign-in opens it)."""
    if provider == "xero":
        return f"{XERO_PAGES[kind]}{qbo_id}" if kind in XERO_PAGES and qbo_id and realm_id else None
    path = WEB_PATHS.get(kind)
    if not (path and qbo_id and realm_id):
        return None
    host = "app.sandbox.qbo.intuit.com" if sandbox else "app.qbo.intuit.com"
    return f"https://{host}/app/{path}{qbo_id}"


def badge_of(link: Link, realm_id: str | None, sandbox: bool, provider: str = "quickbooks") -> RecordSync:
    """The badge for `link`: a stored "<what happened>; <what to do>" is split into its halves."""
    message = link.last_error
    reason, action = message, GENERIC_ACTION.get(link.status)
    if message and "; " in message and link.status in (FAILED, CONFLICT):
        reason, action = message.split("; ", 1)
    exportable = link.kind == INVOICE and (link.detail or {}).get("reason") == "export_off" and link.status == NOT_SYNCED
    label = LABELS.get(link.status, link.status.replace("_", " "))
    if exportable:
        label, reason, action = "not exported", "automatic export is off", "Send to QuickBooks exports it"
    return RecordSync(
        status=link.status, message=message, label=label,
        reason=reason if link.status != SYNCED else None, action=action,
        qbo_url=qbo_web_url(link.kind, link.qbo_id, realm_id, sandbox, provider) if link.status != DELETED else None,
        can_retry=link.status in RETRYABLE and not exportable, can_export=exportable,
    )
