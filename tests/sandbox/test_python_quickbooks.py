"""Unmodified python-quickbooks + intuit-oauth against the sandbox over real HTTP."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import requests
from quickbooks.batch import batch_create
from quickbooks.cdc import change_data_capture
from quickbooks.exceptions import (
    AuthorizationException,
    ObjectNotFoundException,
    QuickbooksException,
    ValidationException,
)
from quickbooks.objects.customer import Customer
from quickbooks.objects.detailline import SalesItemLine, SalesItemLineDetail
from quickbooks.objects.invoice import Invoice
from quickbooks.objects.item import Item
from quickbooks.objects.payment import Payment, PaymentLine
from quickbooks.objects.salesreceipt import SalesReceipt
from quickbooks.objects.vendor import Vendor


def _customer(qb, name: str, email: str | None = None) -> Customer:
    customer = Customer()
    customer.DisplayName = name
    customer.GivenName = name.split()[0]
    if email:
        from quickbooks.objects.base import EmailAddress

        customer.PrimaryEmailAddr = EmailAddress()
        customer.PrimaryEmailAddr.Address = email
    return customer.save(qb=qb)


def _invoice(qb, customer: Customer, amount: float) -> Invoice:
    invoice = Invoice()
    line = SalesItemLine()
    line.Amount = amount
    line.SalesItemLineDetail = SalesItemLineDetail()
    line.SalesItemLineDetail.ItemRef = Item.get(1, qb=qb).to_ref()
    invoice.Line.append(line)
    invoice.CustomerRef = customer.to_ref()
    return invoice.save(qb=qb)


def test_create_read_sparse_update_query_count(qb) -> None:
    created = _customer(qb, "Ada Lovelace", "ada@example.com")
    assert created.Id == "1"
    assert created.SyncToken == "0"
    assert created.DisplayName == "Ada Lovelace"
    assert created.PrimaryEmailAddr.Address == "ada@example.com"

    read = Customer.get(created.Id, qb=qb)
    assert read.DisplayName == "Ada Lovelace"
    assert read.Active is True

    read.sparse = True
    read.Notes = "first note"
    updated = read.save(qb=qb)
    assert updated.SyncToken == "1"
    assert updated.Notes == "first note"

    _customer(qb, "Bob Byte")
    found = Customer.filter(PrimaryEmailAddr="ada@example.com", qb=qb)
    assert [c.Id for c in found] == ["1"]
    assert [c.DisplayName for c in Customer.where("DisplayName LIKE 'B%'", qb=qb)] == ["Bob Byte"]
    assert [c.DisplayName for c in Customer.all(order_by="DisplayName DESC", qb=qb)] == [
        "Bob Byte", "Ada Lovelace"]
    assert Customer.count(qb=qb) == 2
    assert Customer.count("DisplayName = 'Nobody'", qb=qb) == 0
    assert Customer.filter(DisplayName="Nobody", qb=qb) == []
    assert [c.DisplayName for c in Customer.choose(["Ada Lovelace", "Bob Byte"],
                                                    field="DisplayName", qb=qb)] == [
        "Ada Lovelace", "Bob Byte"]
    items = Item.all(qb=qb)  # SELECT *, Sku FROM Item
    assert [i.Name for i in items] == ["Services"]


def test_duplicate_name_stale_object_and_not_found_raise_library_exceptions(qb) -> None:
    first = _customer(qb, "Same Name")
    with pytest.raises(QuickbooksException) as dup:
        _customer(qb, "Same Name")
    assert dup.value.error_code == 6240
    assert dup.value.message == "Duplicate Name Exists Error"
    vendor = Vendor()
    vendor.DisplayName = "same name"
    with pytest.raises(QuickbooksException) as vdup:
        vendor.save(qb=qb)
    assert vdup.value.error_code == 6240

    stale = Customer.get(first.Id, qb=qb)
    fresh = Customer.get(first.Id, qb=qb)
    fresh.Notes = "wins"
    fresh.save(qb=qb)
    stale.Notes = "loses"
    with pytest.raises(QuickbooksException) as conflict:
        stale.save(qb=qb)
    assert conflict.value.error_code == 5010
    assert Customer.get(first.Id, qb=qb).Notes == "wins"

    with pytest.raises(ObjectNotFoundException) as missing:
        Customer.get(999, qb=qb)
    assert missing.value.error_code == 610

    with pytest.raises(ValidationException) as bad_query:
        Customer.where("DisplayName = 'a' OR DisplayName = 'b'", qb=qb)
    assert bad_query.value.error_code == 4000


def test_expired_token_raises_authorization_exception(qb, live) -> None:
    requests.post(f"{live.base}/_sandbox/clock", json={"advance_seconds": 3601}, timeout=10)
    with pytest.raises(AuthorizationException) as err:
        Customer.all(qb=qb)
    assert err.value.error_code == 401
    assert '"code":"3200"' in err.value.detail


def test_invoice_payment_void_delete_and_send(qb) -> None:
    customer = _customer(qb, "Payer", "payer@example.com")
    invoice = _invoice(qb, customer, 120.0)
    assert invoice.TotalAmt == 120.0
    assert invoice.Balance == 120.0
    assert invoice.DocNumber == "1001"

    payment = Payment()
    payment.TotalAmt = 50.0
    payment.CustomerRef = customer.to_ref()
    line = PaymentLine()
    line.Amount = 50.0
    line.LinkedTxn.append(invoice.to_linked_txn())
    payment.Line.append(line)
    payment = payment.save(qb=qb)
    assert payment.UnappliedAmt == 0

    invoice = Invoice.get(invoice.Id, qb=qb)
    assert invoice.Balance == 70.0
    assert [(lt.TxnId, lt.TxnType) for lt in invoice.LinkedTxn] == [(payment.Id, "Payment")]
    assert Customer.get(customer.Id, qb=qb).Balance == 70.0

    with pytest.raises(QuickbooksException) as linked:
        invoice.delete(qb=qb)
    assert linked.value.error_code == 6000

    voided = payment.void(qb=qb)
    assert voided["Payment"]["TotalAmt"] == 0
    assert voided["Payment"]["PrivateNote"] == "Voided"
    invoice = Invoice.get(invoice.Id, qb=qb)
    assert invoice.Balance == 120.0
    assert invoice.LinkedTxn == []

    sent = invoice.send(qb=qb, send_to="billing@example.com")
    assert sent["Invoice"]["EmailStatus"] == "EmailSent"
    assert sent["Invoice"]["DeliveryInfo"]["DeliveryType"] == "Email"
    assert invoice.download_pdf(qb=qb).startswith(b"%PDF-1.4")

    result = invoice.void(qb=qb)
    assert result["Invoice"]["TotalAmt"] == 0
    assert result["Invoice"]["Balance"] == 0
    assert result["Invoice"]["PrivateNote"] == "Voided"

    second = _invoice(qb, customer, 10.0)
    deleted = second.delete(qb=qb)
    assert deleted["Invoice"] == {"status": "Deleted", "domain": "QBO", "Id": second.Id}
    with pytest.raises(ObjectNotFoundException):
        Invoice.get(second.Id, qb=qb)

    receipt = SalesReceipt()
    rline = SalesItemLine()
    rline.Amount = 30.0
    rline.SalesItemLineDetail = SalesItemLineDetail()
    rline.SalesItemLineDetail.ItemRef = Item.get(1, qb=qb).to_ref()
    receipt.Line.append(rline)
    receipt.CustomerRef = customer.to_ref()
    receipt = receipt.save(qb=qb)
    assert receipt.TotalAmt == 30.0
    assert receipt.Balance == 0
    voided_receipt = receipt.void(qb=qb)
    assert voided_receipt["SalesReceipt"]["TotalAmt"] == 0


def test_cdc_and_batch(qb) -> None:
    since = datetime.now().astimezone() - timedelta(minutes=5)
    result = batch_create([_new_customer(f"Batch {i}") for i in range(3)] +
                          [_new_customer("Batch 0")], qb=qb)
    assert sorted(c.DisplayName for c in result.successes) == ["Batch 0", "Batch 1", "Batch 2"]
    assert len(result.faults) == 1
    assert result.faults[0].Error[0].code == "6240"
    assert result.faults[0].original_object.DisplayName == "Batch 0"

    customer = Customer.filter(DisplayName="Batch 1", qb=qb)[0]
    invoice = _invoice(qb, customer, 5.0)
    invoice.delete(qb=qb)

    changes = change_data_capture([Customer, Invoice], since.isoformat(), qb=qb)
    assert sorted(c.DisplayName for c in changes.Customer) == ["Batch 0", "Batch 1", "Batch 2"]
    assert [i.Id for i in changes.Invoice] == [invoice.Id]
    assert changes.Invoice[0].status == "Deleted"


def _new_customer(name: str) -> Customer:
    customer = Customer()
    customer.DisplayName = name
    return customer
