"""The fair import peer: the "straightforward integrator" with python-quickbooks 0.9.12.

It pages every Customer, then every Invoice, 1000 a page (the library's documented
STARTPOSITION/MAXRESULTS loop, one page at a time), maps each page minimally to the host's records
and writes it with the same host bulk methods the plugin's import calls (`upsert_contacts`,
`upsert_invoices`: one transaction per page), keeping QBO id → CRM id in memory for the invoices'
contacts. It stores no links, no sync state, no error handling: the least a real integration does.

Run by the bench with its own interpreter and packages (the plugin's worker's), the same host app
(bench.hostapp), database and sandbox; bench/shim sends Intuit's hosts to the sandbox.
    fair_import.py REALM ACCESS_TOKEN TENANT
Prints one JSON line: counts, wall and CPU of the loop (after setup, as a worker is measured after
it starts), peak RSS.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import Any

from quickbooks import QuickBooks
from quickbooks.objects.customer import Customer
from quickbooks.objects.invoice import Invoice as QboInvoice

from bench.hostapp import create_app
from crm_qbo_plugin.host import Contact, Invoice, InvoiceStatus, LineItem, Origin
from crm_qbo_plugin.state import get_state

PAGE = 1000


class StaticAuth:
    """A duck-typed auth client with a valid access token: python-quickbooks makes no token call."""

    def __init__(self, token: str) -> None:
        self.environment = "production"
        self.access_token = token
        self.refresh_token = "unused"
        self.client_id = "bench"


def pages(entity: Any, client: QuickBooks) -> Iterator[list[Any]]:
    start = 1
    while True:
        page = entity.query(f"SELECT * FROM {entity.qbo_object_name} STARTPOSITION {start} MAXRESULTS {PAGE}",
                            qb=client)
        yield page
        if len(page) < PAGE:
            return
        start += PAGE


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def contact(customer: Any) -> Contact:
    email = customer.PrimaryEmailAddr.Address if customer.PrimaryEmailAddr else None
    phone = customer.PrimaryPhone.FreeFormNumber if customer.PrimaryPhone else ""
    return Contact(id="", email=email or None, first_name=_text(customer.GivenName),
                   last_name=_text(customer.FamilyName), company_name=_text(customer.CompanyName),
                   phone=_text(phone), origin=Origin.QBO, active=bool(customer.Active))


def invoice(qbo: Any, contact_id: str) -> Invoice:
    lines = []
    for line in qbo.Line or []:
        detail = getattr(line, "SalesItemLineDetail", None)
        if getattr(line, "DetailType", "") != "SalesItemLineDetail" or detail is None:
            continue
        name = detail.ItemRef.name if detail.ItemRef and detail.ItemRef.name else _text(line.Description) or "Item"
        lines.append(LineItem(name=name, quantity=Decimal(str(detail.Qty or 1)),
                              unit_price=Decimal(str(detail.UnitPrice or line.Amount or 0)),
                              description=_text(line.Description)))
    total = Decimal(str(qbo.TotalAmt or 0))
    balance = Decimal(str(qbo.Balance if qbo.Balance is not None else total))
    status = InvoiceStatus.PAID if balance == 0 and total > 0 else (
        InvoiceStatus.PARTIALLY_PAID if balance < total else InvoiceStatus.SENT)
    return Invoice(id="", contact_id=contact_id, number=qbo.DocNumber, status=status,
                   currency=qbo.CurrencyRef.value if qbo.CurrencyRef else "USD",
                   issue_date=date.fromisoformat(qbo.TxnDate),
                   due_date=date.fromisoformat(qbo.DueDate) if qbo.DueDate else None,
                   lines=tuple(lines), total=total, amount_paid=total - balance, origin=Origin.QBO)


def main() -> None:
    realm, token, tenant = sys.argv[1], sys.argv[2], sys.argv[3]
    app = create_app()
    host = get_state(app).host
    client = QuickBooks(auth_client=StaticAuth(token), refresh_token="unused", company_id=realm, minorversion=75)
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    crm_ids: dict[str, str] = {}
    counts = {"Customer": 0, "Invoice": 0}
    with app.app_context():
        for page in pages(Customer, client):
            ids = host.upsert_contacts(tenant, [contact(c) for c in page], Origin.QBO)
            crm_ids.update(zip((str(c.Id) for c in page), ids, strict=True))
            counts["Customer"] += len(page)
        for page in pages(QboInvoice, client):
            host.upsert_invoices(tenant, [invoice(i, crm_ids[str(i.CustomerRef.value)]) for i in page], Origin.QBO)
            counts["Invoice"] += len(page)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    print(json.dumps({"records": sum(counts.values()), "counts": counts, "wall_s": wall, "cpu_s": cpu,
                      "peak_rss_mb": after.ru_maxrss / 1024.0}))


if __name__ == "__main__":
    main()
