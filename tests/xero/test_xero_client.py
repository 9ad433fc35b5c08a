"""XeroClient against the local Xero: contacts, invoices and payments written and read back,
arrays with per-element errors, Idempotency-Key replays, 429s and the shared limiter, the
modified-since poll."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
import requests

from crm_qbo_plugin.xero import (
    LimiterConfig,
    NotFoundError,
    RetryPolicy,
    ThrottledError,
    TransientError,
    ValidationError,
    XeroClient,
    parse_timestamp,
)
from tests.xero.conftest import Xero
from tests.xero_sandbox.support import control

LINE = {"Description": "Consulting", "Quantity": Decimal("2"), "UnitAmount": Decimal("50.00"),
        "AccountCode": "200", "TaxType": "OUTPUT2"}


def _stats(xero: Xero) -> dict:
    return control(xero.url, "GET", "stats")


def _invoice(contact_id: str, number: str, **extra) -> dict:
    return {"Type": "ACCREC", "Contact": {"ContactID": contact_id}, "InvoiceNumber": number,
            "Status": "AUTHORISED", "Date": "2026-06-01", "DueDate": "2026-06-30",
            "LineAmountTypes": "Exclusive", "LineItems": [LINE], **extra}


def test_settings_reads(xero: Xero):
    org = xero.client.organisation()
    assert (org["BaseCurrency"], org["CountryCode"]) == ("NZD", "NZ")
    assert [a["Code"] for a in xero.client.accounts('Type=="BANK"')] == ["090"]
    assert {r["TaxType"] for r in xero.client.tax_rates()} == {"OUTPUT2", "INPUT2", "ZERORATED",
                                                               "NONE"}
    assert [c["Code"] for c in xero.client.currencies()] == ["NZD"]
    [item] = [s.element for s in xero.client.save_items([{
        "Code": "CONS", "Name": "Consulting", "SalesDetails": {"UnitPrice": Decimal("50"),
                                                              "AccountCode": "200"}}],
        request_id="items-1")]
    assert [i["ItemID"] for i in xero.client.items('Code=="CONS"')] == [item["ItemID"]]


def test_contacts_found_by_email_and_name_and_arrays_report_each_element(xero: Xero):
    ada = xero.client.save_contact({"Name": "Ada Lovelace", "FirstName": "Ada",
                                    "EmailAddress": "ada@example.com"}, request_id="c-1")
    assert xero.client.get_contact(ada["ContactID"])["Name"] == "Ada Lovelace"
    assert [c["ContactID"] for c in xero.client.find_contacts(email="ADA@example.com")] == [
        ada["ContactID"]]
    assert [c["ContactID"] for c in xero.client.find_contacts(name='ada lovelace')] == [
        ada["ContactID"]]
    assert xero.client.find_contacts(email='x"@example.com') == []  # quoted, not injected
    updated = xero.client.save_contact({"ContactID": ada["ContactID"], "LastName": "King"},
                                       request_id="c-2")
    assert (updated["ContactID"], updated["LastName"]) == (ada["ContactID"], "King")

    saved = xero.client.save_contacts([{"Name": "Grace Hopper"}, {"Name": "Ada Lovelace"},
                                       {"Name": "Alan Turing"}], request_id="c-3",
                                      create_only=True)
    assert [s.ok for s in saved] == [True, False, True]
    assert saved[1].errors == ("The contact name Ada Lovelace is already assigned to another "
                               "contact. The contact name must be unique across all active "
                               "contacts.",)
    assert all(s.element.get("ContactID") for s in (saved[0], saved[2]))
    with pytest.raises(ValidationError) as caught:
        xero.client.save_contact({"Name": "Grace Hopper"}, request_id="c-4", create_only=True)
    assert "already assigned" in caught.value.messages[0]
    with pytest.raises(NotFoundError):
        xero.client.get_contact("00000000-0000-0000-0000-000000000001")
    with pytest.raises(ValueError):
        xero.client.save_contacts([{"Name": f"N{i}"} for i in range(51)], request_id="c-5")


def test_invoice_payment_void_round_trip(xero: Xero):
    contact = xero.client.save_contact({"Name": "Buyer"}, request_id="c-1")
    invoice = xero.client.save_invoice(_invoice(contact["ContactID"], "CRM-1001"),
                                       request_id="i-1")
    assert (invoice["Status"], invoice["SubTotal"], invoice["TotalTax"], invoice["Total"]) == (
        "AUTHORISED", Decimal("100.00"), Decimal("15.00"), Decimal("115.00"))
    assert xero.client.get_invoice("CRM-1001")["InvoiceID"] == invoice["InvoiceID"]
    found = xero.client.find_invoice_by_number("CRM-1001")
    assert found is not None and found["InvoiceID"] == invoice["InvoiceID"]
    assert xero.client.find_invoice_by_number("CRM-404") is None

    payment = xero.client.create_payment({"Invoice": {"InvoiceID": invoice["InvoiceID"]},
                                          "Account": {"Code": "090"}, "Date": "2026-06-02",
                                          "Amount": Decimal("40.00"), "Reference": "card"},
                                         request_id="p-1")
    assert xero.client.get_payment(payment["PaymentID"])["Amount"] == Decimal("40.00")
    after = xero.client.get_invoice(invoice["InvoiceID"])
    assert (after["AmountPaid"], after["AmountDue"]) == (Decimal("40.00"), Decimal("75.00"))
    with pytest.raises(ValidationError) as caught:
        xero.client.void_invoice(invoice["InvoiceID"], request_id="v-1")
    assert caught.value.messages == ("This document cannot be edited as it has a payment or "
                                     "credit note allocated to it.",)
    assert xero.client.delete_payment(payment["PaymentID"], request_id="d-1")["Status"] == "DELETED"
    voided = xero.client.void_invoice(invoice["InvoiceID"], request_id="v-2")
    assert (voided["Status"], voided["AmountDue"]) == ("VOIDED", Decimal("0.00"))


def test_a_replayed_write_returns_the_first_answer_and_creates_nothing(xero: Xero):
    contact = xero.client.save_contact({"Name": "Buyer"}, request_id="c-1")
    body = _invoice(contact["ContactID"], "CRM-2001")
    first = xero.client.save_invoice(body, request_id="outbox-17")
    # the worker crashed after Xero answered; the retry sends the same call with the same id
    again = xero.client.save_invoice(body, request_id="outbox-17")
    assert again == first
    assert _stats(xero)["by_endpoint"]["replay"] == 1
    listed = xero.client.request("GET", "/Invoices")["Invoices"]
    assert [i["InvoiceID"] for i in listed] == [first["InvoiceID"]]
    with pytest.raises(ValidationError) as caught:  # the same id for a different call is a bug
        xero.client.save_invoice(dict(body, Reference="changed"), request_id="outbox-17")
    assert "is used with a different request" in caught.value.messages[0]
    assert len(xero.client.request("GET", "/Invoices")["Invoices"]) == 1
    with pytest.raises(ValueError):
        xero.client.request("POST", "/Invoices", body={})


def test_a_429_is_surfaced_with_retry_after_and_pauses_every_worker(xero: Xero):
    control(xero.url, "PATCH", f"organisations/{xero.tenant_id}", limits={"per_minute": 3})
    client, limiter = xero.client_with(LimiterConfig(requests_per_minute=100))
    for _ in range(3):
        client.organisation()
    with pytest.raises(ThrottledError) as caught:
        client.organisation()
    assert (caught.value.problem, caught.value.retry_after, caught.value.status) == (
        "minute", 60.0, 429)
    assert caught.value.retryable is True
    reason, wait = limiter.try_acquire(xero.tenant_id, "another-worker")
    assert reason == "cooldown" and 55 < wait <= 72  # 60 s + up to 20 % jitter
    assert _stats(xero)["throttled"] == 1


def test_the_limiter_keeps_under_60_a_minute_and_keeps_the_daily_remaining(xero: Xero):
    for _ in range(58):
        xero.client.organisation()
    assert xero.client.day_remaining == 5000 - 58
    assert xero.limiter.day_remaining(xero.tenant_id) == 5000 - 58
    reason, wait = xero.limiter.try_acquire(xero.tenant_id, "one-more")
    assert reason == "minute" and 0 < wait <= 60
    assert _stats(xero)["throttled"] == 0


def test_the_day_budget_is_refused_before_xero_refuses_it(xero: Xero):
    client, limiter = xero.client_with(LimiterConfig(requests_per_day=2))
    client.organisation()
    client.organisation()
    assert limiter.try_acquire(xero.tenant_id, "third")[0] == "day"
    with pytest.raises(ThrottledError) as caught:
        client.organisation()
    assert caught.value.problem == "day" and 86000 < (caught.value.retry_after or 0) <= 86400
    assert _stats(xero)["by_endpoint"]["organisation.get"] == 2


def test_changed_pages_oldest_first_from_the_given_time(xero: Xero):
    xero.client.save_contact({"Name": "Old"}, request_id="c-0")
    control(xero.url, "POST", "clock", advance_seconds=10)
    since = datetime.fromisoformat(control(xero.url, "GET", "clock")["now"])
    control(xero.url, "POST", "clock", advance_seconds=5)
    names = []
    for index in range(3):
        names.append(f"New {index}")
        xero.client.save_contact({"Name": names[-1]}, request_id=f"c-{index + 1}")
        control(xero.url, "POST", "clock", advance_seconds=1)
    pages = list(xero.client.changed("Contacts", since, page_size=2))
    assert [[c["Name"] for c in page] for page in pages] == [["New 0", "New 1"], ["New 2"]]
    stamps = [parse_timestamp(c["UpdatedDateUTC"]) for page in pages for c in page]
    assert stamps == sorted(stamps) and stamps[0] > since.astimezone(UTC)
    assert list(xero.client.changed("Invoices", datetime.now(UTC))) == [[]]


def test_unknown_tenant_is_a_reconnect(xero: Xero):
    from crm_qbo_plugin.xero import ReconnectRequired, XeroClient

    stranger = XeroClient("00000000-0000-0000-0000-0000000000aa", xero.tokens,
                          base_url=f"{xero.url}/api.xro/2.0")
    with pytest.raises(ReconnectRequired) as caught:
        stranger.organisation()
    assert "AuthenticationUnsuccessful" in str(caught.value) and caught.value.status == 403
    assert requests.get(f"{xero.url}/api.xro/2.0/Organisation", timeout=5).status_code == 401


def test_transient_failures_are_retried_under_the_same_key(xero: Xero):
    contact = xero.client.save_contact({"Name": "Buyer"}, request_id="c-1")
    sleeps: list[float] = []
    client = XeroClient(xero.tenant_id, xero.tokens, limiter=xero.limiter, sleep=sleeps.append,
                        base_url=f"{xero.url}/api.xro/2.0",
                        retry=RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.01))
    control(xero.url, "POST", "faults", path="/Invoices", method="PUT", status=503, times=1)
    control(xero.url, "POST", "faults", path="/Invoices", method="PUT", reset=True, times=1)
    created = client.save_invoice(_invoice(contact["ContactID"], "CRM-3001"), request_id="o-3",
                                  create_only=True)
    assert len(sleeps) == 2
    assert [i["InvoiceID"] for i in xero.client.request("GET", "/Invoices")["Invoices"]] == [
        created["InvoiceID"]]
    control(xero.url, "POST", "faults", path="/Invoices", method="PUT", status=500, times=3)
    with pytest.raises(TransientError) as caught:
        client.save_invoice(_invoice(contact["ContactID"], "CRM-3002"), request_id="o-4",
                            create_only=True)
    assert caught.value.status == 500 and len(sleeps) == 4
    assert xero.client.find_invoice_by_number("CRM-3002") is None


def test_five_in_flight_per_organisation_and_a_released_slot_is_free_again(xero: Xero):
    holders = [f"w{i}" for i in range(5)]
    assert [xero.limiter.try_acquire(xero.tenant_id, h)[0] for h in holders] == [None] * 5
    reason, _wait = xero.limiter.try_acquire(xero.tenant_id, "w5")
    assert reason == "in_flight"
    assert xero.limiter.try_acquire("another-org", "w5") == (None, 0.0)  # per organisation
    xero.limiter.release(xero.tenant_id, "w0")
    assert xero.limiter.try_acquire(xero.tenant_id, "w5") == (None, 0.0)
