"""What a push to Xero works with: the row, the connection, the organisation's client and books.
(`mapping/xero_record.py` gives Xero's answers the shape the link book and the ledger keep.)"""

from __future__ import annotations

from dataclasses import dataclass

from crm_qbo_plugin.mapping.xero_invoice import LINE_AMOUNT_TYPES, XeroBooks
from crm_qbo_plugin.outbound.context import RecordPush
from crm_qbo_plugin.outbound.failures import PushFailed
from crm_qbo_plugin.xero import XeroClient


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
                         payment_account=settings.payment_account_id or "",
                         line_amount_types=self.line_amount_types())

    def line_amount_types(self) -> str:
        """The organisation's way of pricing sales, read when it was connected (`tax_model`);
        a connection stored before that was kept: Exclusive, Xero's default."""
        mode = self.conn.tax_model
        return mode if mode in LINE_AMOUNT_TYPES else "Exclusive"
