"""Xero records as the link book and the write ledger keep every provider's (pure; no I/O).

Xero records have no SyncToken: `as_written` gives Xero's answer the `Id`, `SyncToken` and
`DocNumber` both keep, with the record's `UpdatedDateUTC` in milliseconds as its version (it changes
with every write Xero accepts), so the outbound push records it and the inbound poll tells our own
write's echo by it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from crm_qbo_plugin.xero.timestamps import parse_timestamp

ID_KEYS = {"XeroContact": "ContactID", "XeroInvoice": "InvoiceID", "XeroPayment": "PaymentID"}


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
