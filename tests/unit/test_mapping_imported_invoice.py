"""QBO Invoice → CRM Invoice mapping and payment state (Decimal end to end)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from crm_qbo_plugin import InvoiceStatus, Origin
from crm_qbo_plugin.mapping.imported_invoice import (
    amount_paid,
    invoice_from_qbo,
    invoice_status,
    is_void,
    money,
)
from crm_qbo_plugin.qbo import jsoncodec


@pytest.fixture
def sample(samples_dir):
    return jsoncodec.loads((samples_dir / "invoice-read-response.json").read_bytes())["Invoice"]


def test_the_intuit_sample_invoice_maps_with_exact_money(sample):
    invoice = invoice_from_qbo(sample, "i-1", "c-1", "USD")
    assert (invoice.id, invoice.contact_id, invoice.number, invoice.origin) == ("i-1", "c-1", "1037", Origin.QBO)
    assert (invoice.total, invoice.amount_paid, invoice.status) == (Decimal("362.07"), Decimal("0"), InvoiceStatus.SENT)
    assert (invoice.issue_date, invoice.due_date, invoice.currency) == (date(2014, 9, 19), date(2014, 10, 19), "USD")
    assert [(line.name, line.quantity, line.unit_price) for line in invoice.lines] == [
        ("Rock Fountain", Decimal("1"), Decimal("275")), ("Pump", Decimal("1"), Decimal("12.75")),
        ("Concrete", Decimal("5"), Decimal("9.5"))]
    assert invoice.billing_email == "Familiystore@intuit.com"


@pytest.mark.parametrize(("total", "balance", "note", "status", "paid"), [
    ("100.00", "100.00", None, InvoiceStatus.SENT, "0"),
    ("100.00", "40.00", None, InvoiceStatus.PARTIALLY_PAID, "60.00"),
    ("100.00", "0", None, InvoiceStatus.PAID, "100.00"),
    ("0", "0", "Voided", InvoiceStatus.VOID, "0"),
    ("0", "0", "Voided - late", InvoiceStatus.VOID, "0"),
    ("0", "0", None, InvoiceStatus.SENT, "0"),  # a zero-total invoice is never "paid"
])
def test_status_and_amount_paid_come_from_balance_total_and_void(total, balance, note, status, paid):
    body = {"TotalAmt": Decimal(total), "Balance": Decimal(balance), **({"PrivateNote": note} if note else {})}
    assert invoice_status(body) is status
    assert amount_paid(body) == Decimal(paid)
    assert is_void(body) is (status is InvoiceStatus.VOID)


def test_floats_are_refused_and_discount_lines_are_totalled(sample):
    with pytest.raises(TypeError):
        money(0.1)
    body = {**sample, "Line": [*sample["Line"], {"DetailType": "DiscountLineDetail", "Amount": Decimal("5.25")}]}
    assert invoice_from_qbo(body, "i", "c", "USD").discount_total == Decimal("5.25")
    with pytest.raises(ValueError, match="TxnDate"):
        invoice_from_qbo({**sample, "TxnDate": ""}, "i", "c", "USD")
