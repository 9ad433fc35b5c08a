"""What a push to Xero works with: the row, the connection, the organisation's client and books.

Xero records have no SyncToken: `as_written` gives Xero's answer the shape the link book and the
write ledger keep for every provider (`Id`, `SyncToken`, `DocNumber`), with the record's
`UpdatedDateUTC` in milliseconds as its version (it changes with every write Xero accepts).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from crm_qbo_plugin.mapping.xero_invoice import XeroBooks
from crm_qbo_plugin.outbound.context import RecordPush
from crm_qbo_plugin.outbound.failures import PushFailed
from crm_qbo_plugin.xero import XeroClient, parse_timestamp

ID_KEYS = {"XeroContact": "ContactID", "XeroInvoice": "InvoiceID", "XeroPayment": "PaymentID"}


@dataclass
class XeroPush(RecordPush):
    """A push to Xero: the row's client for the connected organisation."""

    xero: XeroClient

    @property
    def realm(self) -> str:
        """The organisation's Xero tenant id (what `Connection.realm_id` holds for Xero)."""
        return self.xero.tenant_id

    def books(self) -> XeroBooks:
        """The organisation's facts and the card's choices the mapping needs."""
        settings = self.settings
        if not settings.revenue_account_id:
            raise PushFailed("choose the Xero revenue account invoice lines go to on the card, then retry")
        return XeroBooks(base_currency=(self.conn.home_currency or "USD").upper(),
                         revenue_account=settings.revenue_account_id,
                         tax_mapping=dict(settings.tax_mapping),
                         payment_account=settings.payment_account_id or "")


def version(record: Mapping[str, Any]) -> str:
    """The record's version: its UpdatedDateUTC in milliseconds ("" when Xero sent none)."""
    raw = record.get("UpdatedDateUTC")
    if not isinstance(raw, str) or not raw:
        return ""
    return str(int(parse_timestamp(raw).timestamp() * 1000))


def as_written(entity: str, record: Mapping[str, Any]) -> dict[str, Any]:
    """Xero's answer with the id, version and number the link book and ledger read."""
    written = {**record, "Id": str(record[ID_KEYS[entity]]), "SyncToken": version(record)}
    if record.get("InvoiceNumber"):
        written["DocNumber"] = str(record["InvoiceNumber"])
    return written
