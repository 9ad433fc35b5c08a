"""CRM ⇄ Xero mapping (pure): totals to the cent under Exclusive, Inclusive and NoTax with line and
invoice discounts, contact matching and names, payments, sales, and Xero records read back."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal as D

import pytest

from crm_qbo_plugin.host import (
    Contact,
    Invoice,
    InvoiceStatus,
    LineItem,
    Origin,
    Payment,
    PaymentSource,
    Tax,
)
from crm_qbo_plugin.mapping.money import cents
from crm_qbo_plugin.mapping.names import contact_name_candidates
from crm_qbo_plugin.mapping.xero_contact import (
    contact_body,
    contact_from_xero,
    contact_number,
    match_contact,
)
from crm_qbo_plugin.mapping.xero_imported_invoice import invoice_from_xero
from crm_qbo_plugin.mapping.xero_invoice import (
    MappingError,
    XeroBooks,
    expected_totals,
    invoice_body,
    keep_line_ids,
    line_split,
)
from crm_qbo_plugin.mapping.xero_payment import (
    payment_body,
    sale_invoice_body,
    sale_number,
    sale_total,
)

GST = Tax("gst", "GST", D("15"))
RATES = {"OUTPUT2": D("15"), "NONE": D("0"), "ZERORATED": D("0")}
MAPPING = {"gst": "OUTPUT2", "none": "NONE"}


def books(mode: str = "Exclusive", **extra) -> XeroBooks:
    return XeroBooks(base_currency="NZD", revenue_account="200", line_amount_types=mode,
                     tax_mapping=MAPPING, payment_account="090", **extra)


def crm_invoice(lines, total, discount_total=D("0"), taxes=(GST,), **extra) -> Invoice:
    fields = {"id": "inv-1", "contact_id": "c-1", "number": "INV-0042",
              "status": InvoiceStatus.SENT, "currency": "NZD", "issue_date": date(2026, 6, 1),
              "due_date": date(2026, 6, 30), "lines": tuple(lines), "total": total,
              "discount_total": discount_total, "taxes": tuple(taxes)}
    return Invoice(**{**fields, **extra})


def line(name, qty, price, discount="0", taxed=True, sku=None) -> LineItem:
    return LineItem(name=name, quantity=D(qty), unit_price=D(price), discount=D(discount),
                    tax_ids=("gst",) if taxed else (), sku=sku)


# The rounding guide's lines: tax per line (Xero) 11.44, on the total (this CRM) 11.45.
ROUNDING_LINES = [line("A", "1", "25.06"), line("B", "1", "25.61"), line("C", "1", "25.63")]
ROUNDING_CRM_TOTAL = D("76.30") + cents(D("76.30") * D("0.15"))  # 87.75


@pytest.mark.parametrize("mode", ["Exclusive", "Inclusive", "NoTax"])
def test_totals_equal_the_crms_where_xero_rounding_per_line_would_not(mode):
    invoice = crm_invoice(ROUNDING_LINES, ROUNDING_CRM_TOTAL)
    body = invoice_body(invoice, books(mode), "xc-1")
    totals = expected_totals(body, RATES)
    assert totals.total == D("87.75")
    assert totals.tax == (D("0") if mode == "NoTax" else D("11.45"))
    without_override = {**body, "LineItems": [{k: v for k, v in ln.items() if k != "TaxAmount"}
                                              for ln in body["LineItems"]]}
    if mode == "Exclusive":  # what Xero alone would have made of it: a cent short
        assert expected_totals(without_override, RATES).total == D("87.74")


@pytest.mark.parametrize("mode", ["Exclusive", "Inclusive", "NoTax"])
def test_line_and_invoice_discounts_with_mixed_tax(mode):
    lines = [line("Widget", "3", "19.99", discount="5.00"), line("Setup", "1", "120.00"),
             line("Exempt book", "2", "12.345", taxed=False), line("Third", "7", "3.3333")]
    net = D("3") * D("19.99") - D("5.00") + D("120") + D("2") * D("12.345") + D("7") * D("3.3333")
    after_discount = cents(net - D("10.00"))
    taxable = after_discount - cents(D("2") * D("12.345"))  # roughly; the CRM's own arithmetic
    total = after_discount + cents(taxable * D("0.15"))
    invoice = crm_invoice(lines, total, discount_total=D("10.00"))
    body = invoice_body(invoice, books(mode), "xc-1")
    totals = expected_totals(body, RATES)
    amounts, taxes = line_split(invoice)
    assert sum(amounts) == after_discount and sum(taxes) == total - after_discount
    assert taxes[2] == D("0")  # the untaxed line gets no share of the tax
    assert totals.total == total
    if mode == "Exclusive":
        assert (totals.subtotal, totals.tax) == (after_discount, total - after_discount)
        widget = body["LineItems"][0]
        assert (widget["Quantity"], widget["UnitAmount"]) == (D("3"), D("19.99"))
        assert widget["DiscountAmount"] == D("59.97") - amounts[0]
        assert [ln["TaxType"] for ln in body["LineItems"]] == ["OUTPUT2", "OUTPUT2", "NONE",
                                                               "OUTPUT2"]
    if mode == "NoTax":
        assert all("TaxType" not in ln and "TaxAmount" not in ln for ln in body["LineItems"])


def test_invoice_body_shape_items_and_line_ids():
    invoice = crm_invoice([line("Widget", "2", "10", sku="W-1")], D("23.00"))
    body = invoice_body(invoice, books(), "xc-1", {"sku:W-1": "W1"})
    assert body == {
        "Type": "ACCREC", "Contact": {"ContactID": "xc-1"}, "InvoiceNumber": "INV-0042",
        "Date": "2026-06-01", "Status": "AUTHORISED", "LineAmountTypes": "Exclusive",
        "CurrencyCode": "NZD", "DueDate": "2026-06-30",
        "LineItems": [{"Description": "Widget", "Quantity": D("2"), "UnitAmount": D("10"),
                       "ItemCode": "W1", "AccountCode": "200", "TaxType": "OUTPUT2",
                       "TaxAmount": D("3.00")}]}
    update = keep_line_ids(body, {"InvoiceID": "xi-1", "LineItems": [{"LineItemID": "l-1"}]})
    assert update["InvoiceID"] == "xi-1" and update["LineItems"][0]["LineItemID"] == "l-1"
    assert "LineItemID" not in body["LineItems"][0]  # the body itself is not changed


def test_a_price_xero_cannot_hold_goes_as_one_unit():
    invoice = crm_invoice([line("Odd", "3", "0.123456", taxed=False)], D("0.37"), taxes=())
    [only] = invoice_body(invoice, books("NoTax"), "xc-1")["LineItems"]
    assert (only["Quantity"], only["UnitAmount"]) == (D("3"), D("0.1233"))
    assert expected_totals({"LineAmountTypes": "NoTax", "LineItems": [only]}, RATES).total == \
        D("0.37")


def test_refusals_say_what_to_change():
    with pytest.raises(MappingError, match="map the CRM tax VAT"):
        invoice_body(crm_invoice([LineItem("x", D(1), D(1), tax_ids=("vat",))], D("1.10"),
                                 taxes=(Tax("vat", "VAT", D("10")),)), books(), "xc")
    with pytest.raises(MappingError, match="none of its lines is taxed"):
        invoice_body(crm_invoice([line("x", "1", "10", taxed=False)], D("11.50")), books(), "xc")
    with pytest.raises(MappingError, match="is not enabled in Xero"):
        invoice_body(crm_invoice([line("x", "1", "10")], D("11.50"), currency="EUR"), books(), "xc")
    assert invoice_body(crm_invoice([line("x", "1", "10")], D("11.50"), currency="EUR"),
                        books(currencies=frozenset({"EUR"})), "xc")["CurrencyCode"] == "EUR"
    with pytest.raises(MappingError, match="no lines"):
        invoice_body(crm_invoice([], D("0")), books(), "xc")
    with pytest.raises(MappingError, match="LineAmountTypes"):
        books("EXCLUSIVE")


def test_contact_names_matching_and_body():
    ada = Contact(id="42", email="Ada@Example.com", first_name="Ada", last_name="Lovelace",
                  phone="+44 20 7946 0000")
    assert contact_name_candidates("t1", ada)[:2] == ["Ada Lovelace", "Ada Lovelace (Ada@Example.com)"]
    assert len(set(contact_name_candidates("t1", ada))) == 3
    assert contact_number("42") == "CRM-42" and len(contact_number("x" * 80)) <= 50
    assert contact_body(ada, "Ada Lovelace", number="CRM-42") == {
        "Name": "Ada Lovelace", "FirstName": "Ada", "LastName": "Lovelace",
        "EmailAddress": "Ada@Example.com", "ContactNumber": "CRM-42",
        "Phones": [{"PhoneType": "DEFAULT", "PhoneNumber": "+44 20 7946 0000"}]}
    assert contact_body(Contact(id="1", email=None), "Contact 1") == {"Name": "Contact 1"}
    by_name = {"ContactID": "n", "Name": "ADA LOVELACE", "ContactStatus": "ACTIVE"}
    by_email = {"ContactID": "e", "Name": "A. L.", "EmailAddress": "ada@example.com"}
    archived = {"ContactID": "a", "Name": "Ada Lovelace", "EmailAddress": "ada@example.com",
                "ContactStatus": "ARCHIVED"}
    assert match_contact(ada, [archived, by_name, by_email]) == (by_email, "email")
    assert match_contact(ada, [archived, by_name]) == (by_name, "name")
    assert match_contact(ada, [archived]) == (None, "")


def test_xero_contact_to_crm():
    contact = contact_from_xero({
        "ContactID": "x", "Name": "Acme Ltd", "FirstName": "Wile", "LastName": "Coyote",
        "EmailAddress": "wile@acme.test", "ContactStatus": "ARCHIVED",
        "UpdatedDateUTC": "/Date(1551981568133+0000)/",
        "Phones": [{"PhoneType": "DDI"}, {"PhoneType": "MOBILE", "PhoneCountryCode": "64",
                                          "PhoneAreaCode": "21", "PhoneNumber": "555 0101"}]},
        "crm-7")
    assert contact == Contact(id="crm-7", email="wile@acme.test", first_name="Wile",
                              last_name="Coyote", company_name="Acme Ltd", phone="64 21 555 0101",
                              origin=Origin.QBO, active=False,
                              updated_at=datetime(2019, 3, 7, 17, 59, 28, 133000, tzinfo=UTC))
    plain = contact_from_xero({"Name": "Grace Brewster Hopper", "EmailAddress": "nope"}, "c")
    assert (plain.first_name, plain.last_name, plain.company_name, plain.email, plain.active) == (
        "Grace", "Brewster Hopper", "", None, True)
    same = contact_from_xero({"Name": "Ada Lovelace", "FirstName": "Ada", "LastName": "Lovelace"},
                             "c")
    assert same.company_name == ""


def _payment(**extra) -> Payment:
    base = {"id": "p-9", "contact_id": "c-1", "source": PaymentSource.ORDER_FORM,
            "amount": D("99.99"), "currency": "NZD",
            "paid_at": datetime(2026, 6, 3, 22, 0, tzinfo=UTC), "reference": "ORDER-77"}
    return Payment(**{**base, **extra})


def test_payment_against_an_invoice():
    assert payment_body(_payment(invoice_id="inv-1"), "xi-1", books()) == {
        "Invoice": {"InvoiceID": "xi-1"}, "Account": {"Code": "090"}, "Date": "2026-06-03",
        "Amount": D("99.99"), "Reference": "ORDER-77 · CRM p-9"}
    assert payment_body(_payment(invoice_id="inv-1", reference=None), "xi-1", books())["Reference"] == "CRM p-9"
    long = payment_body(_payment(invoice_id="inv-1", reference="R" * 400), "xi-1", books())["Reference"]
    assert len(long) == 255 and long.endswith(" · CRM p-9")  # the marker is never cut
    with pytest.raises(MappingError, match="bank account"):
        payment_body(_payment(), "xi-1", XeroBooks("NZD", "200"))
    with pytest.raises(MappingError, match="above zero"):
        payment_body(_payment(amount=D("0")), "xi-1", books())


@pytest.mark.parametrize("mode", ["Exclusive", "Inclusive", "NoTax"])
def test_a_payment_without_an_invoice_is_a_sale_for_exactly_the_amount_paid(mode):
    payment = _payment(lines=(line("Course", "3", "21.50"), line("Book", "1", "33.00",
                                                                  taxed=False)))
    sale = sale_invoice_body(payment, books(mode), "xc-1")
    assert sale["InvoiceNumber"] == sale_number("p-9") == "CRM-SALE-p-9"
    assert sale["LineAmountTypes"] == ("NoTax" if mode == "NoTax" else "Inclusive")
    assert sale["Reference"] == "ORDER-77" and sale["Status"] == "AUTHORISED"
    assert sale_total(sale) == D("99.99") == expected_totals(sale, RATES).total
    bare = sale_invoice_body(_payment(amount=D("10.01")), books(mode), "xc-1")
    assert [(ln["Quantity"], ln["UnitAmount"]) for ln in bare["LineItems"]] == [(D(1), D("10.01"))]


def test_xero_invoice_to_crm():
    invoice = invoice_from_xero({
        "Type": "ACCREC", "InvoiceID": "xi", "InvoiceNumber": "INV-0007", "Status": "AUTHORISED",
        "CurrencyCode": "nzd", "Date": "/Date(1780272000000+0000)/",
        "DueDate": "/Date(1782777600000+0000)/", "Total": D("115.00"), "AmountPaid": D("40.00"),
        "UpdatedDateUTC": "/Date(1780300000000+0000)/",
        "LineItems": [{"Description": "Consulting\nJune", "Quantity": D("2"),
                       "UnitAmount": D("55.00"), "LineAmount": D("100.00"), "ItemCode": "CONS"}]},
        "crm-i", "crm-c")
    assert (invoice.number, invoice.status, invoice.currency, invoice.total, invoice.amount_paid) \
        == ("INV-0007", InvoiceStatus.PARTIALLY_PAID, "NZD", D("115.00"), D("40.00"))
    assert (invoice.issue_date, invoice.due_date) == (date(2026, 6, 1), date(2026, 6, 30))
    [only] = invoice.lines
    assert (only.name, only.sku, only.quantity, only.unit_price, only.discount) == (
        "Consulting", "CONS", D("2"), D("55.00"), D("10.00"))
    for status, expected in (("VOIDED", InvoiceStatus.VOID), ("PAID", InvoiceStatus.PAID),
                             ("DRAFT", InvoiceStatus.DRAFT), ("DELETED", InvoiceStatus.DELETED)):
        assert invoice_from_xero({"Type": "ACCREC", "Status": status, "Date": "2026-06-01",
                                  "AmountPaid": D("5")}, "i", "c").status == expected
    assert invoice_from_xero({"Type": "ACCREC", "Status": "VOIDED", "Date": "2026-06-01",
                              "AmountPaid": D("5")}, "i", "c").amount_paid == D("0")
    with pytest.raises(ValueError):
        invoice_from_xero({"Type": "ACCPAY", "Date": "2026-06-01"}, "i", "c")
