"""The pure reconcile rules, one difference at a time."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from crm_qbo_plugin import Contact, Invoice, InvoiceStatus, Payment, PaymentSource
from crm_qbo_plugin.reconcile.compare import Sides, compare
from crm_qbo_plugin.store.tables import Link

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def inv(status=InvoiceStatus.SENT, total="50.00", paid="0", sent=NOW) -> Invoice:
    return Invoice(id="i1", contact_id="c1", number=None, status=status, currency="USD", issue_date=date(2026, 6, 1),
                   due_date=None, lines=(), total=Decimal(total), amount_paid=Decimal(paid), sent_at=sent)


def sides(**kw) -> Sides:
    base = dict(connected_at=NOW - timedelta(days=1), import_invoices=False, contacts={}, invoices={}, payments={},
                links=[], customers={}, qbo_invoices={}, receipts={}, qbo_payments={})
    base.update(kw)
    return Sides(**base)


def problems(s: Sides) -> set[tuple[str, str]]:
    return {(d.kind, d.problem) for d in compare(s).differences}


def test_void_on_one_side_only_and_deleted_but_still_open():
    link = Link(tenant_id="t", kind="invoice", crm_id="i1", qbo_id="9", origin="crm")
    voided = {"Id": "9", "TotalAmt": 0, "Balance": 0, "PrivateNote": "Voided"}
    assert problems(sides(invoices={"i1": inv()}, links=[link], qbo_invoices={"9": voided})) == {("invoice", "status")}
    assert problems(sides(invoices={"i1": inv(InvoiceStatus.VOID)}, links=[link], qbo_invoices={"9": voided})) == set()
    open_invoice = {"Id": "9", "TotalAmt": 50, "Balance": 50}
    assert problems(sides(invoices={"i1": inv(InvoiceStatus.DELETED)}, links=[link], qbo_invoices={"9": open_invoice})) == {("invoice", "status")}
    assert problems(sides(invoices={"i1": inv(paid="20")}, links=[link], qbo_invoices={"9": open_invoice})) == {("invoice", "amount_paid")}


def test_invoices_sent_before_the_connection_are_not_expected_but_ignored_ones_are_still_reported():
    old = inv(sent=NOW - timedelta(days=30))
    assert problems(sides(invoices={"i1": old})) == set()
    assert problems(sides(invoices={"i1": inv()})) == {("invoice", "not_synced")}
    ignored = Link(tenant_id="t", kind="invoice", crm_id="i1", qbo_id=None, origin="crm", status="ignored")
    assert problems(sides(invoices={"i1": inv()}, links=[ignored])) == {("invoice", "not_synced")}


def test_duplicate_customers_email_mismatch_and_inactive_customers():
    link = Link(tenant_id="t", kind="contact", crm_id="c1", qbo_id="1", origin="crm")
    customers = {"1": {"Id": "1", "PrimaryEmailAddr": {"Address": "JANE@x.com"}},
                 "2": {"Id": "2", "DisplayName": "Jane (2)", "PrimaryEmailAddr": {"Address": "jane@x.com "}},
                 "3": {"Id": "3", "Active": False, "DisplayName": "Old (deleted)"}}
    contacts = {"c1": Contact(id="c1", email="jane@x.com")}
    assert problems(sides(contacts=contacts, links=[link], customers=customers)) == {
        ("customer", "missing_in_crm"), ("customer", "duplicate")}
    contacts = {"c1": Contact(id="c1", email="june@x.com")}
    assert ("contact", "email") in problems(sides(contacts=contacts, links=[link], customers=customers))


def test_receipts_and_invoice_payments_are_checked_against_their_kind():
    receipt = Payment(id="p1", contact_id="c1", source=PaymentSource.CALENDAR, amount=Decimal("30"), currency="USD", paid_at=NOW)
    against = Payment(id="p2", contact_id="c1", source=PaymentSource.INVOICE, amount=Decimal("20"), currency="USD", paid_at=NOW, invoice_id="i1")
    links = [Link(tenant_id="t", kind="sales_receipt", crm_id="p1", qbo_id="4", origin="crm")]
    result = problems(sides(payments={"p1": receipt, "p2": against}, links=links, receipts={"4": {"Id": "4", "TotalAmt": 31}}))
    assert result == {("sales_receipt", "total"), ("payment", "not_synced")}
