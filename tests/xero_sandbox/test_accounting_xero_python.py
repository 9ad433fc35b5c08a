"""The Accounting API through the unmodified xero-python SDK: contacts, items, invoices through
their statuses, tax and discounts, payments, arrays with and without summarizeErrors,
Idempotency-Key replays, paging, where/order and If-Modified-Since."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from xero_python.accounting import (
    Account,
    Contact,
    Contacts,
    Invoice,
    Invoices,
    Item,
    Items,
    LineAmountTypes,
    LineItem,
    Payment,
    PaymentDelete,
    Purchase,
)
from xero_python.exceptions import AccountingBadRequestException, NotFoundException

from tests.xero_sandbox.support import control

DUPLICATE = ("The contact name {} is already assigned to another contact. The contact name must "
             "be unique across all active contacts.")
ARCHIVED = ("The contact with the specified contact details has been archived. The contact must "
            "be un-archived before creating new invoices or credit notes.")


def _contact(xp, tenant_id, name="Acme Corp", **fields):
    return xp.accounting.create_contacts(tenant_id, Contacts(contacts=[
        Contact(name=name, **fields)])).contacts[0]


def _invoice(xp, tenant_id, contact_id, lines, **fields):
    fields.setdefault("status", "DRAFT")
    invoice = Invoice(type="ACCREC", contact=Contact(contact_id=contact_id), line_items=lines,
                      date=date(2026, 3, 1), due_date=date(2026, 3, 31), **fields)
    return xp.accounting.create_invoices(tenant_id, Invoices(invoices=[invoice])).invoices[0]


def _error(exc: AccountingBadRequestException) -> list[str]:
    return [e["Message"] for el in exc.error_data["Elements"] for e in el["ValidationErrors"]]


def test_reference_data(xp, tenant_id):
    org = xp.accounting.get_organisations(tenant_id).organisations[0]
    assert (org.name, org.base_currency.value, org.country_code.value, org.version) == (
        "Acme Ltd", "NZD", "NZ", "NZ")
    accounts = xp.accounting.get_accounts(tenant_id, where='Type=="BANK"').accounts
    assert [(a.code, a.type.value, a.status) for a in accounts] == [("090", "BANK", "ACTIVE")]
    rates = {r.tax_type: r.effective_rate for r in xp.accounting.get_tax_rates(tenant_id).tax_rates}
    assert rates["OUTPUT2"] == Decimal("15") and rates["NONE"] == Decimal("0")
    assert [c.code.value for c in xp.accounting.get_currencies(tenant_id).currencies] == ["NZD"]


def test_contacts_unique_active_names_archive_and_restore(xp, tenant_id):
    acme = _contact(xp, tenant_id, email_address="a@acme.test", contact_number="CRM-1")
    assert acme.contact_status == "ACTIVE" and acme.updated_date_utc.tzinfo is not None
    fetched = xp.accounting.get_contact(tenant_id, acme.contact_id).contacts[0]
    assert (fetched.name, fetched.email_address, fetched.contact_number) == (
        "Acme Corp", "a@acme.test", "CRM-1")
    with pytest.raises(AccountingBadRequestException) as dup:
        _contact(xp, tenant_id, name="acme corp")
    assert dup.value.reason == DUPLICATE.format("acme corp")
    assert len(xp.accounting.get_contacts(tenant_id).contacts) == 1

    updated = xp.accounting.update_contact(tenant_id, acme.contact_id, Contacts(contacts=[
        Contact(email_address="b@acme.test")])).contacts[0]
    assert (updated.contact_id, updated.email_address, updated.name) == (
        acme.contact_id, "b@acme.test", "Acme Corp")

    xp.accounting.update_contact(tenant_id, acme.contact_id, Contacts(contacts=[
        Contact(contact_status="ARCHIVED")]))
    assert xp.accounting.get_contacts(tenant_id).contacts == []
    assert [c.contact_status for c in xp.accounting.get_contacts(
        tenant_id, include_archived=True).contacts] == ["ARCHIVED"]
    with pytest.raises(AccountingBadRequestException) as archived:
        _invoice(xp, tenant_id, acme.contact_id, [LineItem(description="x", quantity=1,
                                                           unit_amount=10, account_code="200")])
    assert archived.value.reason == ARCHIVED
    assert xp.accounting.get_invoices(tenant_id).invoices == []

    second = _contact(xp, tenant_id)  # the archived one no longer holds the name
    with pytest.raises(AccountingBadRequestException) as restore:
        xp.accounting.update_contact(tenant_id, acme.contact_id, Contacts(contacts=[
            Contact(contact_status="ACTIVE")]))
    assert restore.value.reason == DUPLICATE.format("Acme Corp")
    assert xp.accounting.get_contact(tenant_id, acme.contact_id).contacts[0].contact_status == "ARCHIVED"
    assert second.contact_id != acme.contact_id


def test_invoice_statuses_payments_and_refusals(xp, tenant_id):
    contact = _contact(xp, tenant_id)
    lines = [LineItem(description="Consulting", quantity=Decimal("2"), unit_amount=Decimal("100"),
                      account_code="200", discount_rate=Decimal("10")),
             LineItem(description="Travel", quantity=1, unit_amount=Decimal("50.00"),
                      account_code="200", tax_type="NONE")]
    draft = _invoice(xp, tenant_id, contact.contact_id, lines, reference="CRM-1")
    assert (draft.status, draft.invoice_number, draft.sub_total, draft.total_tax, draft.total,
            draft.total_discount, draft.amount_due) == (
        "DRAFT", "INV-0001", Decimal("230"), Decimal("27"), Decimal("257"), Decimal("20"),
        Decimal("257"))
    assert draft.date == date(2026, 3, 1) and draft.line_amount_types == LineAmountTypes.EXCLUSIVE
    assert [(li.line_amount, li.tax_amount, li.tax_type) for li in draft.line_items] == [
        (Decimal("180"), Decimal("27"), "OUTPUT2"), (Decimal("50"), Decimal("0"), "NONE")]

    def move(status, **fields):
        return xp.accounting.update_invoice(tenant_id, draft.invoice_id, Invoices(invoices=[
            Invoice(status=status, **fields)])).invoices[0]

    with pytest.raises(AccountingBadRequestException) as void_draft:
        move("VOIDED")
    assert void_draft.value.reason == "Invoice not of valid status for modification"
    assert move("SUBMITTED").status == "SUBMITTED"
    authorised = move("AUTHORISED")
    assert authorised.status == "AUTHORISED"
    assert [li.line_item_id for li in authorised.line_items] == [li.line_item_id for li in draft.line_items]
    with pytest.raises(AccountingBadRequestException) as delete_authorised:
        move("DELETED")
    assert delete_authorised.value.reason == "Invoice not of valid status for modification"

    bank = Account(code="090")
    first = xp.accounting.create_payment(tenant_id, Payment(
        invoice=Invoice(invoice_id=draft.invoice_id), account=bank, amount=Decimal("100.00"),
        date=date(2026, 3, 5), reference="part")).payments[0]
    assert (first.status, first.payment_type, first.amount) == ("AUTHORISED", "ACCRECPAYMENT", Decimal("100"))
    partly = xp.accounting.get_invoice(tenant_id, draft.invoice_id).invoices[0]
    assert (partly.status, partly.amount_paid, partly.amount_due) == (
        "AUTHORISED", Decimal("100"), Decimal("157"))
    with pytest.raises(AccountingBadRequestException) as void_paid:
        move("VOIDED")
    assert void_paid.value.reason == ("This document cannot be edited as it has a payment or "
                                      "credit note allocated to it.")
    with pytest.raises(AccountingBadRequestException) as over:
        xp.accounting.create_payment(tenant_id, Payment(
            invoice=Invoice(invoice_id=draft.invoice_id), account=bank, amount=Decimal("157.01")))
    assert over.value.reason == "Payment amount exceeds the amount outstanding on this document"
    rest = xp.accounting.create_payment(tenant_id, Payment(
        invoice=Invoice(invoice_number="INV-0001"), account=bank, amount=Decimal("157"),
        date=date(2026, 3, 9))).payments[0]
    paid = xp.accounting.get_invoice(tenant_id, "INV-0001").invoices[0]
    assert (paid.status, paid.amount_due, paid.fully_paid_on_date, len(paid.payments)) == (
        "PAID", Decimal("0"), date(2026, 3, 9), 2)
    on_invoice = xp.accounting.get_payments(
        tenant_id, where=f'Invoice.InvoiceID==Guid("{draft.invoice_id}")', order="Amount").payments
    assert [(p.amount, p.date) for p in on_invoice] == [
        (Decimal("100"), date(2026, 3, 5)), (Decimal("157"), date(2026, 3, 9))]

    deleted = xp.accounting.delete_payment(tenant_id, rest.payment_id,
                                           PaymentDelete(status="DELETED")).payments[0]
    assert deleted.status == "DELETED"
    back = xp.accounting.get_invoice(tenant_id, draft.invoice_id).invoices[0]
    assert (back.status, back.amount_paid, back.amount_due, back.fully_paid_on_date) == (
        "AUTHORISED", Decimal("100"), Decimal("157"), None)
    xp.accounting.delete_payment(tenant_id, first.payment_id, PaymentDelete(status="DELETED"))
    voided = move("VOIDED")
    assert (voided.status, voided.amount_due) == ("VOIDED", Decimal("0"))
    with pytest.raises(AccountingBadRequestException) as after_void:
        move("AUTHORISED")
    assert after_void.value.reason == "Invoice not of valid status for modification"
    with pytest.raises(AccountingBadRequestException) as number_kept:  # voiding keeps the number
        _invoice(xp, tenant_id, contact.contact_id, lines, invoice_number="INV-0001")
    assert number_kept.value.reason == "Invoice # must be unique."

    other = _invoice(xp, tenant_id, contact.contact_id, lines)
    gone = xp.accounting.update_invoice(tenant_id, other.invoice_id, Invoices(invoices=[
        Invoice(status="DELETED")])).invoices[0]
    assert gone.status == "DELETED"
    assert {p.status for p in xp.accounting.get_payments(tenant_id).payments} == {"DELETED"}


def test_tax_computed_per_line_and_rounded(xp, tenant_id):
    contact = _contact(xp, tenant_id)
    exclusive = _invoice(xp, tenant_id, contact.contact_id, [
        LineItem(description=str(a), quantity=1, unit_amount=Decimal(a), account_code="200")
        for a in ("25.06", "25.61", "25.63")])
    assert (exclusive.total_tax, exclusive.total) == (Decimal("11.44"), Decimal("87.74"))
    inclusive = _invoice(xp, tenant_id, contact.contact_id, [
        LineItem(description="gross", quantity=1, unit_amount=Decimal("115"), account_code="200"),
        LineItem(description="gross", quantity=3, unit_amount=Decimal("9.99"), account_code="200")],
        line_amount_types=LineAmountTypes.INCLUSIVE)
    assert [li.tax_amount for li in inclusive.line_items] == [Decimal("15"), Decimal("3.91")]
    assert (inclusive.sub_total, inclusive.total_tax, inclusive.total) == (
        Decimal("126.06"), Decimal("18.91"), Decimal("144.97"))
    no_tax = _invoice(xp, tenant_id, contact.contact_id, [
        LineItem(description="x", quantity=2, unit_amount=Decimal("10"), account_code="200",
                 discount_amount=Decimal("5"))], line_amount_types=LineAmountTypes.NOTAX)
    assert (no_tax.total_tax, no_tax.total, no_tax.total_discount) == (
        Decimal("0"), Decimal("15"), Decimal("5"))
    four_dp = xp.accounting.create_invoices(tenant_id, Invoices(invoices=[Invoice(
        type="ACCREC", contact=Contact(contact_id=contact.contact_id), line_items=[LineItem(
            description="x", quantity=3, unit_amount=Decimal("1.2345"), account_code="200")])]),
        unitdp=4).invoices[0]
    assert (four_dp.line_items[0].unit_amount, four_dp.sub_total) == (Decimal("1.2345"), Decimal("3.7"))


def test_items_put_post_and_use_on_lines(xp, tenant_id):
    item = xp.accounting.create_items(tenant_id, Items(items=[Item(
        code="W" * 30, name="N" * 50, description="Widget",
        sales_details=Purchase(unit_price=Decimal("12.50"), account_code="200"))])).items[0]
    assert (item.code, item.sales_details.unit_price) == ("W" * 30, Decimal("12.5"))
    with pytest.raises(AccountingBadRequestException) as dup:
        xp.accounting.create_items(tenant_id, Items(items=[Item(code="W" * 30, name="Other")]))
    assert dup.value.reason == f"Price List Item with Code ''{'W' * 30}'' already exists"
    renamed = xp.accounting.update_or_create_items(tenant_id, Items(items=[Item(
        code="W" * 30, name="Widget")])).items[0]
    assert (renamed.item_id, renamed.name) == (item.item_id, "Widget")
    contact = _contact(xp, tenant_id)
    invoice = _invoice(xp, tenant_id, contact.contact_id, [LineItem(item_code="W" * 30, quantity=2)])
    line = invoice.line_items[0]
    assert (line.description, line.unit_amount, line.account_code, line.line_amount) == (
        "Widget", Decimal("12.5"), "200", Decimal("25"))


def test_arrays_with_per_element_errors(xp, tenant_id):
    contact = _contact(xp, tenant_id)
    line = [LineItem(description="x", quantity=1, unit_amount=10, account_code="200")]

    def inv(number, code="200"):
        return Invoice(type="ACCREC", contact=Contact(contact_id=contact.contact_id),
                       invoice_number=number, line_items=[LineItem(
                           description="x", quantity=1, unit_amount=10, account_code=code)])

    _invoice(xp, tenant_id, contact.contact_id, line, invoice_number="A-1")
    mixed = xp.accounting.create_invoices(tenant_id, Invoices(invoices=[
        inv("A-2"), inv("A-1"), inv("A-3", code="476")]), summarize_errors=False).invoices
    assert [i.status_attribute_string for i in mixed] == ["OK", "ERROR", "ERROR"]
    assert mixed[0].invoice_id and mixed[1].invoice_id is None
    assert [e.message for e in mixed[1].validation_errors] == ["Invoice # must be unique."]
    assert [e.message for e in mixed[2].validation_errors] == [
        "Account code '476' has been removed as it does not match a recognised account."]
    assert mixed[2].has_errors is True

    with pytest.raises(AccountingBadRequestException) as summarized:
        xp.accounting.create_invoices(tenant_id, Invoices(invoices=[
            inv("B-1"), inv("A-1"), inv("B-2")]))
    assert summarized.value.error_data["Type"] == "ValidationException"
    assert _error(summarized.value) == ["Invoice # must be unique."]
    assert [e["InvoiceNumber"] for e in summarized.value.error_data["Elements"]] == ["A-1"]
    numbers = sorted(i.invoice_number for i in xp.accounting.get_invoices(tenant_id).invoices)
    assert numbers == ["A-1", "A-2", "B-1", "B-2"]  # the valid ones were still created

    fifty = xp.accounting.create_contacts(tenant_id, Contacts(contacts=[
        Contact(name=f"Bulk {n}") for n in range(50)]), summarize_errors=False).contacts
    assert len(fifty) == 50 and {c.status_attribute_string for c in fifty} == {"OK"}


def test_idempotency_key_replays(xp, tenant_id):
    body = Contacts(contacts=[Contact(name="Once Only")])
    first = xp.accounting.create_contacts(tenant_id, body, idempotency_key="crm-contact-1")
    again = xp.accounting.create_contacts(tenant_id, body, idempotency_key="crm-contact-1")
    assert again.contacts[0].contact_id == first.contacts[0].contact_id
    assert len(xp.accounting.get_contacts(tenant_id).contacts) == 1
    with pytest.raises(AccountingBadRequestException) as misuse:
        xp.accounting.create_contacts(tenant_id, Contacts(contacts=[Contact(name="Other")]),
                                      idempotency_key="crm-contact-1")
    assert misuse.value.reason == "The Idempotency-Key crm-contact-1 is used with a different request"
    # an error is replayed too (not re-run), and after 6 minutes the key is new
    url = xp.accounting.base_url.rsplit("/api.xro", 1)[0]
    control(url, "DELETE", "stats")
    for _ in range(2):
        with pytest.raises(AccountingBadRequestException):
            xp.accounting.create_contacts(tenant_id, body, idempotency_key="crm-contact-2")
    assert control(url, "GET", "stats")["by_endpoint"] == {"contacts.put": 1, "replay": 1}
    control(url, "POST", "clock", advance_seconds=361)
    other = xp.accounting.create_contacts(tenant_id, Contacts(contacts=[Contact(name="Other")]),
                                          idempotency_key="crm-contact-1").contacts[0]
    assert other.name == "Other"
    assert len(xp.accounting.get_contacts(tenant_id).contacts) == 2


def test_paging_where_order_and_modified_since(xp, tenant_id):
    url = xp.accounting.base_url.rsplit("/api.xro", 1)[0]
    xp.accounting.create_contacts(tenant_id, Contacts(contacts=[
        Contact(name=f"Customer {n:02d}", email_address=f"c{n}@x.test") for n in range(5)]))
    page = xp.accounting.get_contacts(tenant_id, page=1, page_size=2, order="Name DESC")
    assert [c.name for c in page.contacts] == ["Customer 04", "Customer 03"]
    assert (page.pagination.page, page.pagination.page_size, page.pagination.page_count,
            page.pagination.item_count) == (1, 2, 3, 5)
    last = xp.accounting.get_contacts(tenant_id, page=3, page_size=2, order="Name DESC")
    assert [c.name for c in last.contacts] == ["Customer 00"]
    assert [c.name for c in xp.accounting.get_contacts(
        tenant_id, where='Name.StartsWith("customer 0") && EmailAddress!="c1@x.test"',
        order="Name").contacts] == ["Customer 00", "Customer 02", "Customer 03", "Customer 04"]
    assert [c.name for c in xp.accounting.get_contacts(tenant_id, search_term="C3@").contacts] == [
        "Customer 03"]

    control(url, "POST", "clock", advance_seconds=120)
    since = datetime.now(UTC).replace(tzinfo=None) + timedelta(seconds=60)
    target = xp.accounting.get_contacts(tenant_id, where='Name=="Customer 02"').contacts[0]
    xp.accounting.update_contact(tenant_id, target.contact_id, Contacts(contacts=[
        Contact(first_name="Changed")]))
    changed = xp.accounting.get_contacts(tenant_id, if_modified_since=since).contacts
    assert [(c.name, c.first_name) for c in changed] == [("Customer 02", "Changed")]

    contact_id = target.contact_id
    for n in range(3):
        _invoice(xp, tenant_id, contact_id, [LineItem(description="x", quantity=1,
                                                      unit_amount=n + 1, account_code="200")],
                 status="AUTHORISED" if n else "DRAFT")
    summary = xp.accounting.get_invoices(tenant_id).invoices
    assert len(summary) == 3 and all(i.line_items is None for i in summary)
    paged = xp.accounting.get_invoices(tenant_id, page=1, statuses=["AUTHORISED"],
                                       where=f'Contact.ContactID==Guid("{contact_id}")',
                                       order="Total DESC")
    assert [(i.total, len(i.line_items)) for i in paged.invoices] == [
        (Decimal("3.45"), 1), (Decimal("2.3"), 1)]
    assert xp.accounting.get_invoices(tenant_id, where="Date>=DateTime(2026,3,2)").invoices == []
    with pytest.raises(NotFoundException):
        xp.accounting.get_invoice(tenant_id, "00000000-0000-0000-0000-000000000001")
