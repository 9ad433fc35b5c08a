"""The review request through the real pipeline: a CRM invoice pushed by the outbound side, two
partial payments made in QuickBooks, signed webhooks into the plugin, drain jobs, then a replayed
delivery and a CDC re-read — exactly one review request, after the second payment (G39)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import requests

from crm_qbo_plugin import Contact, EventType, HostEvent, Invoice, InvoiceStatus, LineItem
from crm_qbo_plugin.inbound.cdc import poll
from crm_qbo_plugin.outbound.intake import publish
from tests.support.inbound import TENANT, inbound_env


def _requests(host, trigger: str = "review_request") -> list:
    return [t for t in host.triggers if t.trigger == trigger]


def test_one_review_request_after_the_second_partial_payment_however_often_qbo_tells_us(plugin_config, sandbox_url):
    with inbound_env(plugin_config, sandbox_url, review_request=True, revenue_account_id="1") as env:
        env.host.contacts[(TENANT, "c1")] = Contact(id="c1", email="dana@example.com", first_name="Dana", last_name="Reyes")
        env.host.invoices[(TENANT, "inv-1")] = Invoice(
            id="inv-1", contact_id="c1", number=None, status=InvoiceStatus.SENT, currency="USD",
            issue_date=date.today(), due_date=None, total=Decimal("100.00"),
            lines=(LineItem("Consulting", Decimal("1"), Decimal("100.00")),), sent_at=datetime.now(UTC))
        publish(env.state, TENANT, HostEvent(type=EventType.INVOICE_SENT, subject_id="inv-1", key="inv-1:sent"))
        env.work()  # the outbound side pushes the customer and the invoice
        env.sync()  # their webhooks are our own echoes
        link = env.links("invoice")[0]
        customer = env.links("contact")[0]["qbo_id"]

        def pay(amount: str) -> None:
            with env.qbo() as qbo:
                qbo.create("Payment", {"CustomerRef": {"value": customer}, "TotalAmt": Decimal(amount),
                                       "Line": [{"Amount": Decimal(amount), "LinkedTxn": [{"TxnId": link["qbo_id"], "TxnType": "Invoice"}]}]})

        pay("40.00")
        env.sync()
        assert env.host.invoices[(TENANT, "inv-1")].status is InvoiceStatus.PARTIALLY_PAID
        assert _requests(env.host) == []
        pay("60.00")
        env.sync()
        assert env.host.invoices[(TENANT, "inv-1")].status is InvoiceStatus.PAID
        [request] = _requests(env.host)
        assert request.contact_id == "c1" and request.payload["qbo_invoice_id"] == link["qbo_id"]
        assert len(_requests(env.host, "invoice_paid_in_full")) == 1
        assert len(_requests(env.host, "payment_received_in_qbo")) == 2

        # Replays: every delivery again, a CDC re-read of the same window, and the webhook log resent.
        log = requests.get(f"{sandbox_url}/_sandbox/webhooks", timeout=10).json()["deliveries"]
        assert sum(b'"Payment"' in d["body"].encode() for d in log) == 2  # both payments' notices, replayed below
        for delivery in log:
            requests.post(delivery["url"], data=delivery["body"].encode(),
                          headers={"intuit-signature": delivery["signature"], "Content-Type": "application/json"}, timeout=10)
        env.work()
        with env.app.app_context():
            poll(env.state, TENANT)
        env.work()
        assert len(_requests(env.host)) == 1
        assert len(_requests(env.host, "invoice_paid_in_full")) == 1
