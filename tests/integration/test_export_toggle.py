"""'Export invoices automatically when sent' off, end to end in the reference CRM: sent invoices
stay out of QuickBooks (batched or not), each shown as not exported with Send to QuickBooks, and
exporting one sends exactly that one."""

from __future__ import annotations

from crm_qbo_plugin import QuickBooksPlugin
from tests.support.crm_stack import crm_stack


def test_with_export_off_only_the_invoice_sent_by_hand_reaches_quickbooks(plugin_config, sandbox_url):
    with crm_stack(plugin_config, sandbox_url, export_on_send=False) as stack:
        contact = stack.api("POST", "/api/contacts", json={"first_name": "Ada", "email": "ada@example.com"}).json
        ids = []
        for amount in ("10", "20", "30", "40"):
            made = stack.api("POST", "/api/invoices", json={
                "contact_id": contact["id"], "lines": [{"name": "Work", "quantity": "1", "unit_price": amount}]}).json
            assert stack.api("POST", f"/api/invoices/{made['id']}/send").status_code == 200
            ids.append(made["id"])
        stack.sync()
        plugin = QuickBooksPlugin()
        with stack.app.app_context():
            badges = [plugin.record_sync(stack.tenant, "invoice", i) for i in ids]
        assert [(b.status, b.can_export, b.can_retry) for b in badges if b] == [("not_synced", True, False)] * 4
        with stack.qbo() as qbo:
            assert qbo.query_all("Invoice", where=[]) == []

        with stack.app.app_context():
            assert plugin.export_invoice(stack.tenant, ids[2]).status == "pending"
        stack.sync()
        with stack.qbo() as qbo:
            pushed = qbo.query_all("Invoice", where=[])
        assert [row["TotalAmt"] for row in pushed] == [30]
        with stack.app.app_context():
            after = [plugin.record_sync(stack.tenant, "invoice", i).status for i in ids]
            for unknown_or_exported in ("no-such-invoice", ids[2]):
                try:
                    plugin.export_invoice(stack.tenant, unknown_or_exported)
                except LookupError:
                    pass
                else:
                    raise AssertionError(f"{unknown_or_exported} was exported")
            assert plugin.record_sync(stack.tenant, "invoice", ids[2]).status == "synced"  # nothing changed
            assert plugin.record_sync(stack.tenant, "invoice", "no-such-invoice") is None
        assert after == ["not_synced", "not_synced", "synced", "not_synced"]

        # a payment on an invoice not exported is kept, saying what to do, never lost
        paid = stack.api("POST", "/api/payments", json={"source": "invoice", "invoice_id": ids[1], "amount": "20"})
        assert paid.status_code == 201, paid.json
        stack.sync()
        with stack.app.app_context():
            held = plugin.record_sync(stack.tenant, "payment", paid.json["id"])
            assert (held.status, held.can_retry) == ("not_synced", True)
            assert held.reason.startswith("not synced: its invoice is not in QuickBooks")
            plugin.export_invoice(stack.tenant, ids[1])
        stack.sync()
        with stack.app.app_context():
            plugin.retry_record(stack.tenant, "payment", paid.json["id"])
        stack.sync()
        with stack.qbo() as qbo:
            assert [row["TotalAmt"] for row in qbo.query_all("Payment", where=[])] == [20]
        with stack.app.app_context():
            assert plugin.record_sync(stack.tenant, "payment", paid.json["id"]).status == "synced"

        with stack.app.app_context():  # Retry (the card's button on such a row) exports it too
            plugin.retry_record(stack.tenant, "invoice", ids[0])
        stack.sync()
        with stack.qbo() as qbo:
            assert sorted(row["TotalAmt"] for row in qbo.query_all("Invoice", where=[])) == [10, 20, 30]
