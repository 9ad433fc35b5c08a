"""Pure mapping: names, money allocation, and the bodies each CRM record becomes."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm_qbo_plugin.host import (
    Contact,
    Invoice,
    InvoiceStatus,
    LineItem,
    Payment,
    PaymentSource,
    Tax,
)
from crm_qbo_plugin.mapping.customer import customer_fields
from crm_qbo_plugin.mapping.invoice import (
    Company,
    MappingError,
    currency_problem,
    folded_lines,
    invoice_body,
)
from crm_qbo_plugin.mapping.money import allocate, unit_price_for
from crm_qbo_plugin.mapping.names import (
    clean_text,
    contact_name_candidates,
    cut,
    doc_number,
    item_key,
    utf16_len,
)
from crm_qbo_plugin.mapping.payment import payment_body
from crm_qbo_plugin.mapping.sales_receipt import sales_receipt_body

US = Company(us=True, home_currency="USD")
GB = Company(us=False, home_currency="GBP", tax_mapping={"vat": "3", "none": "5"})
CENT = Decimal("0.01")


def test_clean_text_removes_controls_and_collapses_spaces():
    assert clean_text("  O\u2019Brien\t&\nSons\x00\x07  West  ") == "O'Brien & Sons West"


def test_cut_counts_emoji_as_two_units_and_is_deterministic():
    text = "a" * 99 + "😀" + "b"
    assert cut(text, 100) == "a" * 99
    assert utf16_len(cut("😀" * 80, 100)) == 100


def test_display_name_has_no_colon_and_is_at_most_100():
    contact = Contact(id="c1", email="x@y.com", first_name="A: B" + "x" * 600, last_name="C")
    names = contact_name_candidates("t", contact)
    assert all(":" not in n and utf16_len(n) <= 100 for n in names)
    assert names[1].endswith(" (x@y.com)")
    assert names == contact_name_candidates("t", contact)
    assert len(set(names)) == 3


def test_customer_fields_leave_out_empty_parts_and_invalid_email():
    body = customer_fields(Contact(id="c1", email="not-an-email", first_name=" Jane ", phone=""), "Jane")
    assert body == {"DisplayName": "Jane", "GivenName": "Jane"}


def test_doc_number_keeps_the_last_21_characters():
    assert doc_number("INV-2024-0000000000012345") == "2024-0000000000012345"
    assert doc_number("  ") is None


def test_item_key_prefers_sku_and_hashes_long_keys():
    assert item_key("Widget", "W-1") == "sku:W-1"
    assert item_key(" Widget  Pro ", None) == "name:widget pro"
    long_key = item_key("x" * 300, None)
    assert len(long_key) <= 64 and long_key == item_key("x" * 300, None)


@given(st.decimals(min_value=Decimal("-1000"), max_value=Decimal("100000"), places=2),
       st.lists(st.decimals(min_value=Decimal("-50"), max_value=Decimal("5000"), places=3), min_size=1, max_size=12))
@settings(max_examples=400, deadline=None)
def test_allocate_sums_exactly_to_the_total(total, weights):
    parts = allocate(total, weights)
    assert sum(parts, Decimal(0)) == total
    assert all(p == p.quantize(CENT) for p in parts)


@given(st.decimals(min_value=Decimal("-5000"), max_value=Decimal("50000"), places=2),
       st.decimals(min_value=Decimal("0.001"), max_value=Decimal("1000"), places=3))
@settings(max_examples=400, deadline=None)
def test_unit_price_reproduces_the_amount_or_none(amount, quantity):
    price = unit_price_for(amount, quantity)
    if price is not None:
        assert (quantity * price).quantize(CENT, rounding=ROUND_HALF_UP) == amount


line_st = st.builds(
    LineItem,
    name=st.sampled_from(["A", "B", "C"]),
    quantity=st.decimals(min_value=Decimal("0.5"), max_value=Decimal("40"), places=2),
    unit_price=st.decimals(min_value=Decimal("0"), max_value=Decimal("999"), places=3),
    discount=st.decimals(min_value=Decimal("0"), max_value=Decimal("5"), places=2),
    tax_ids=st.sampled_from([(), ("t1",), ("t2",), ("t1", "t2")]),
)


@given(st.lists(line_st, min_size=1, max_size=8), st.decimals(min_value=Decimal("0"), max_value=Decimal("20"), places=2))
@settings(max_examples=300, deadline=None)
def test_us_folded_lines_sum_to_the_crm_total_and_qbo_recomputes_each(lines, extra_discount):
    taxes = (Tax("t1", "State", Decimal("8.25")), Tax("t2", "City", Decimal("1.5")))
    total = crm_total(lines, taxes, extra_discount)
    items = {item_key(n, None): str(i) for i, n in enumerate("ABC")}
    out = folded_lines(lines, total, items, taxes)
    assert sum((line["Amount"] for line in out), Decimal(0)) == total
    for line in out:
        detail = line["SalesItemLineDetail"]
        assert (detail["Qty"] * detail["UnitPrice"]).quantize(CENT, rounding=ROUND_HALF_UP) == line["Amount"]
        assert detail["TaxCodeRef"] == {"value": "NON"}


def crm_total(lines, taxes, discount):
    """A CRM's arithmetic: rounded line nets, an invoice discount, then tax per rate on the
    discounted base of the lines carrying it."""
    nets = [(li.quantity * li.unit_price - li.discount).quantize(CENT, rounding=ROUND_HALF_UP) for li in lines]
    subtotal = sum(nets, Decimal(0))
    ratio = (subtotal - discount) / subtotal if subtotal else Decimal(1)
    tax = Decimal(0)
    for t in taxes:
        base = sum((n for n, li in zip(nets, lines, strict=True) if t.id in li.tax_ids), Decimal(0))
        tax += ((base * ratio).quantize(CENT, rounding=ROUND_HALF_UP) * t.rate_percent / 100).quantize(CENT, rounding=ROUND_HALF_UP)
    return subtotal - discount + tax


def _invoice(**extra) -> Invoice:
    values = dict(id="inv1", contact_id="c1", number="INV-7", status=InvoiceStatus.SENT, currency="USD",
                  issue_date=date(2026, 3, 1), due_date=date(2026, 3, 31),
                  lines=(LineItem(name="Consulting", quantity=Decimal(3), unit_price=Decimal("3.333")),),
                  total=Decimal("10.00"), billing_email="bill@example.com")
    values.update(extra)
    return Invoice(**values)


def test_us_invoice_body_is_exact():
    body = invoice_body("t1", _invoice(), US, "7", {"name:consulting": "9"})
    assert body == {
        "CustomerRef": {"value": "7"},
        "Line": [{"DetailType": "SalesItemLineDetail", "Amount": Decimal("10.00"), "Description": "Consulting",
                  "SalesItemLineDetail": {"ItemRef": {"value": "9"}, "Qty": Decimal("3"),
                                          "UnitPrice": Decimal("3.33333"), "TaxCodeRef": {"value": "NON"}}}],
        "TxnDate": "2026-03-01",
        "DueDate": "2026-03-31",
        "BillEmail": {"Address": "bill@example.com"},
        "PrivateNote": "CRM ref: t1/inv1",
    }


def test_doc_number_only_with_custom_transaction_numbers():
    company = Company(us=True, home_currency="USD", custom_txn_numbers=True)
    assert invoice_body("t1", _invoice(), company, "7", {"name:consulting": "9"})["DocNumber"] == "INV-7"


def test_non_us_invoice_has_discount_line_and_mapped_codes():
    invoice = _invoice(currency="GBP", discount_total=Decimal("2.00"), taxes=(Tax("vat", "VAT", Decimal(20)),),
                       lines=(LineItem(name="Consulting", quantity=Decimal(1), unit_price=Decimal(10), tax_ids=("vat",)),
                              LineItem(name="Consulting", quantity=Decimal(1), unit_price=Decimal(5))))
    body = invoice_body("t1", invoice, GB, "7", {"name:consulting": "9"})
    assert [line["SalesItemLineDetail"]["TaxCodeRef"] for line in body["Line"][:2]] == [{"value": "3"}, {"value": "5"}]
    assert body["Line"][2] == {"DetailType": "DiscountLineDetail", "Amount": Decimal("2.00"),
                               "DiscountLineDetail": {"PercentBased": False}}
    assert body["GlobalTaxCalculation"] == "TaxExcluded"


def test_unmapped_tax_says_what_to_map():
    invoice = _invoice(currency="GBP", taxes=(Tax("gst", "GST 5%", Decimal(5)),),
                       lines=(LineItem(name="A", quantity=Decimal(1), unit_price=Decimal(1), tax_ids=("gst",)),))
    with pytest.raises(MappingError, match="map the CRM tax GST 5% on the QuickBooks card"):
        invoice_body("t1", invoice, GB, "7", {"name:a": "1"})


def test_currency_problem_names_both_currencies():
    assert currency_problem("USD", US) is None
    message = currency_problem("eur", US)
    assert message is not None and "EUR" in message and "USD" in message and "multicurrency" in message
    assert currency_problem("EUR", Company(us=True, home_currency="USD", multicurrency=True)) is None


def _payment(**extra) -> Payment:
    values = dict(id="p1", contact_id="c1", source=PaymentSource.SUBSCRIPTION, amount=Decimal("25.00"),
                  currency="USD", paid_at=datetime(2026, 3, 2, 10, tzinfo=UTC), reference="ch_123")
    values.update(extra)
    return Payment(**values)


def test_sales_receipt_without_lines_uses_the_generic_item():
    body = sales_receipt_body("t1", _payment(), US, "7", {"name:sales": "4"})
    assert body["Line"] == [{"DetailType": "SalesItemLineDetail", "Amount": Decimal("25.00"), "Description": "Sales",
                             "SalesItemLineDetail": {"ItemRef": {"value": "4"}, "Qty": Decimal(1),
                                                     "UnitPrice": Decimal(25), "TaxCodeRef": {"value": "NON"}}}]
    assert body["PaymentRefNum"] == "ch_123" and body["TxnDate"] == "2026-03-02"


def test_invoice_payment_links_the_invoice():
    body = payment_body("t1", _payment(source=PaymentSource.INVOICE, invoice_id="inv1"), US, "7", "130")
    assert body == {"TotalAmt": Decimal("25.00"), "CustomerRef": {"value": "7"}, "TxnDate": "2026-03-02",
                    "Line": [{"Amount": Decimal("25.00"), "LinkedTxn": [{"TxnId": "130", "TxnType": "Invoice"}]}],
                    "PaymentRefNum": "ch_123", "PrivateNote": "CRM ref: t1/p1"}
