"""The Accounting API through the unmodified pyxero SDK, which writes XML bodies and reads JSON:
contacts, items, invoices through their statuses, payments and their deletion, arrays with and
without summarizeErrors, paging, filters and If-Modified-Since (RFC 1123)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from xero.exceptions import XeroBadRequest, XeroNotFound

from tests.xero_sandbox.support import control


def _url(px) -> str:
    return px.contacts.base_url.rsplit("/api.xro", 1)[0]


def _line(amount="100.00", **extra):
    return {"Description": "Service", "Quantity": "1", "UnitAmount": amount, "AccountCode": "200",
            **extra}


def test_contacts_put_save_filter_and_archive(px):
    created = px.contacts.put({"Name": "Acme Corp", "EmailAddress": "a@acme.test",
                               "ContactNumber": "CRM-7", "Phones": [
                                   {"PhoneType": "MOBILE", "PhoneNumber": "555"}]})
    assert len(created) == 1
    contact = created[0]
    assert (contact["Name"], contact["ContactStatus"], contact["Phones"]) == (
        "Acme Corp", "ACTIVE", [{"PhoneType": "MOBILE", "PhoneNumber": "555"}])
    assert isinstance(contact["UpdatedDateUTC"], datetime)
    assert px.contacts.get(contact["ContactID"])[0]["EmailAddress"] == "a@acme.test"
    assert px.contacts.get("CRM-7")[0]["ContactID"] == contact["ContactID"]
    with pytest.raises(XeroBadRequest) as dup:
        px.contacts.put({"Name": "Acme Corp"})
    assert dup.value.errors == ["The contact name Acme Corp is already assigned to another "
                                "contact. The contact name must be unique across all active "
                                "contacts."]
    saved = px.contacts.save({"ContactID": contact["ContactID"], "FirstName": "Ann"})
    assert (saved[0]["FirstName"], saved[0]["Name"]) == ("Ann", "Acme Corp")
    by_number = px.contacts.save({"ContactNumber": "CRM-7", "LastName": "Lee"})  # POST matches it
    assert (by_number[0]["ContactID"], by_number[0]["LastName"]) == (contact["ContactID"], "Lee")
    assert [c["ContactID"] for c in px.contacts.filter(Name="Acme Corp")] == [contact["ContactID"]]
    assert [c["Name"] for c in px.contacts.filter(Name__contains="acme")] == ["Acme Corp"]
    px.contacts.save({"ContactID": contact["ContactID"], "ContactStatus": "ARCHIVED"})
    assert px.contacts.all() == []
    assert [c["ContactStatus"] for c in px.contacts.filter(includeArchived=True)] == ["ARCHIVED"]
    with pytest.raises(XeroBadRequest) as update_archived:
        px.contacts.save({"ContactID": contact["ContactID"], "FirstName": "Bob"})
    assert update_archived.value.errors == ["The specified contact details matched an archived contact"]
    with pytest.raises(XeroBadRequest) as archived:
        px.invoices.put({"Type": "ACCREC", "Contact": {"ContactID": contact["ContactID"]},
                         "LineItems": [_line()]})
    assert archived.value.errors == [
        "The contact with the specified contact details has been archived. The contact must be "
        "un-archived before creating new invoices or credit notes."]
    assert px.invoices.all() == []


def test_items_code_and_name_limits(px):
    with pytest.raises(XeroBadRequest) as long_code:
        px.items.put({"Code": "C" * 31, "Name": "ok"})
    assert long_code.value.errors == ["Item Code must not be more than 30 characters long."]
    with pytest.raises(XeroBadRequest) as long_name:
        px.items.put({"Code": "C1", "Name": "N" * 51})
    assert long_name.value.errors == ["Item Name must not be more than 50 characters long."]
    assert px.items.all() == []
    item = px.items.put({"Code": "C" * 30, "Name": "N" * 50,
                         "SalesDetails": {"UnitPrice": "9.95", "AccountCode": "200"}})[0]
    assert (item["Code"], item["SalesDetails"]["UnitPrice"]) == ("C" * 30, 9.95)
    with pytest.raises(XeroBadRequest) as dup:
        px.items.put({"Code": "C" * 30})
    assert dup.value.errors == [f"Price List Item with Code ''{'C' * 30}'' already exists"]


def test_invoice_lifecycle_and_payments_in_xml(px):
    contact = px.contacts.put({"Name": "Buyer"})[0]
    invoice = px.invoices.put({
        "Type": "ACCREC", "Contact": {"ContactID": contact["ContactID"]},
        "Date": date(2026, 4, 1), "DueDate": date(2026, 4, 30), "LineAmountTypes": "Inclusive",
        "Reference": "CRM-9", "LineItems": [_line("115.00"), _line("23.00", DiscountRate="50")]})[0]
    assert (invoice["Status"], invoice["SubTotal"], invoice["TotalTax"], invoice["Total"],
            invoice["TotalDiscount"]) == ("DRAFT", 110.0, 16.5, 126.5, 11.5)
    assert invoice["Date"] == datetime(2026, 4, 1, tzinfo=UTC)
    invoice_id = invoice["InvoiceID"]
    with pytest.raises(XeroBadRequest) as paid_status:
        px.invoices.save({"InvoiceID": invoice_id, "Status": "PAID"})
    assert paid_status.value.errors == ["Invoice not of valid status for modification"]
    with pytest.raises(XeroBadRequest) as not_authorised:
        px.payments.put({"Invoice": {"InvoiceID": invoice_id}, "Account": {"Code": "090"},
                         "Amount": "10.00", "Date": date(2026, 4, 2)})
    assert not_authorised.value.errors == ["Payments can only be made against Authorised documents."]
    approved = px.invoices.save({"InvoiceID": invoice_id, "Status": "AUTHORISED"})[0]
    assert approved["Status"] == "AUTHORISED"
    payment = px.payments.put({"Invoice": {"InvoiceID": invoice_id}, "Account": {"Code": "090"},
                               "Amount": "126.50", "Date": date(2026, 4, 2)})[0]
    assert (payment["Status"], payment["Amount"], payment["Invoice"]["InvoiceID"]) == (
        "AUTHORISED", 126.5, invoice_id)
    paid = px.invoices.get(invoice_id)[0]
    assert (paid["Status"], paid["AmountDue"], paid["AmountPaid"]) == ("PAID", 0.0, 126.5)
    assert paid["FullyPaidOnDate"] == datetime(2026, 4, 2, tzinfo=UTC)
    with pytest.raises(XeroBadRequest) as void_paid:
        px.invoices.save({"InvoiceID": invoice_id, "Status": "VOIDED"})
    assert void_paid.value.errors == ["Invoice not of valid status for modification"]
    deleted = px.payments.delete(payment["PaymentID"])
    assert deleted[0]["Status"] == "DELETED"
    assert px.invoices.get(invoice_id)[0]["Status"] == "AUTHORISED"
    assert px.invoices.save({"InvoiceID": invoice_id, "Status": "VOIDED"})[0]["Status"] == "VOIDED"
    draft = px.invoices.put({"Type": "ACCREC", "Contact": {"Name": "Walk-in Customer"},
                             "LineItems": [_line()]})[0]
    assert draft["Contact"]["Name"] == "Walk-in Customer"  # Xero creates the contact by name
    assert px.invoices.save({"InvoiceID": draft["InvoiceID"], "Status": "DELETED"})[0]["Status"] == "DELETED"
    assert {i["Status"] for i in px.invoices.filter(Statuses=["VOIDED", "DELETED"])} == {
        "VOIDED", "DELETED"}
    with pytest.raises(XeroNotFound):
        px.invoices.get("00000000-0000-0000-0000-000000000001")


def test_arrays_with_and_without_summarize_errors(px):
    mixed = px.contacts.put([{"Name": "One"}, {"Name": "One"}, {"Name": "Two"}],
                            summarize_errors=False)
    assert [c["StatusAttributeString"] for c in mixed] == ["OK", "ERROR", "OK"]
    assert mixed[1]["ValidationErrors"] == [{"Message": (
        "The contact name One is already assigned to another contact. The contact name must be "
        "unique across all active contacts.")}]
    with pytest.raises(XeroBadRequest) as summarized:
        px.contacts.put([{"Name": "Three"}, {"Name": "One"}, {"Name": ""}])
    assert summarized.value.errors == [
        "The contact name One is already assigned to another contact. The contact name must be "
        "unique across all active contacts.", "The contact name must be specified."]
    assert sorted(c["Name"] for c in px.contacts.all()) == ["One", "Three", "Two"]


def test_paging_order_and_modified_since(px):
    px.contacts.put([{"Name": f"P{n}"} for n in range(5)])
    assert [c["Name"] for c in px.contacts.filter(page=2, pageSize=2, order="Name DESC")] == [
        "P2", "P1"]
    control(_url(px), "POST", "clock", advance_seconds=120)
    since = datetime.now(UTC) + timedelta(seconds=60)
    target = px.contacts.filter(Name="P3")[0]
    px.contacts.save({"ContactID": target["ContactID"], "EmailAddress": "p3@x.test"})
    changed = px.contacts.filter(since=since.replace(tzinfo=None))
    assert [(c["Name"], c["EmailAddress"]) for c in changed] == [("P3", "p3@x.test")]
    assert px.contacts.filter(since=since.replace(tzinfo=None) + timedelta(minutes=5)) == []
    contact_id = target["ContactID"]
    px.invoices.put([{"Type": "ACCREC", "Contact": {"ContactID": contact_id}, "Status": "AUTHORISED",
                      "LineItems": [_line(str(n + 1))]} for n in range(3)])
    rows = px.invoices.filter(Contact_ContactID=contact_id, order="Total DESC", page=1)
    assert [(r["Total"], len(r["LineItems"])) for r in rows] == [(3.45, 1), (2.3, 1), (1.15, 1)]
    assert px.invoices.filter(AmountDue__gt=Decimal("2.5"))[0]["Total"] == 3.45
