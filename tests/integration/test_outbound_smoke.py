from __future__ import annotations

from decimal import Decimal

from crm_qbo_plugin.events import EventType
from tests.integration.outbound_helpers import (
    TENANT,
    connect,
    contact,
    invoice,
    make_app,
    publish,
    qbo_rows,
    run_worker,
)


def test_sent_invoice_creates_customer_item_and_invoice(plugin_config, fake_host, sandbox_url):
    app, realm = make_app(plugin_config, fake_host, sandbox_url)
    connect(app, sandbox_url, realm)
    fake_host.contacts[(TENANT, "c1")] = contact()
    fake_host.invoices[(TENANT, "inv1")] = invoice()
    publish(app, EventType.INVOICE_SENT, "inv1")
    run_worker(app)
    invoices = qbo_rows(app, realm, "Invoice")
    assert len(invoices) == 1
    assert invoices[0]["TotalAmt"] == Decimal("100.00")
