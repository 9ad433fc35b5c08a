"""The card's plain language: summaries of sync work, QuickBooks links, advice on failures."""

from __future__ import annotations

from crm_qbo_plugin.web import wording


def test_summaries_count_each_kind_in_words_and_skip_what_did_not_happen():
    assert wording.summary({"invoice": 2, "payment": 1}, 1, 0, 0, 0) == (
        "Sent 2 invoices and 1 payment to QuickBooks · Received 1 change from QuickBooks")
    assert wording.summary({"contact": 1, "invoice": 1, "payment": 3}, 0, 0, 0, 0) == (
        "Sent 1 invoice, 3 payments and 1 contact to QuickBooks")
    assert wording.summary({}, 2, 40, 1, 2) == (
        "Imported 40 records from QuickBooks · Received 2 changes from QuickBooks · 1 could not be sent · "
        "2 problems reading QuickBooks")
    assert wording.summary({"invoice": 0}, 0, 1, 0, 0) == "Imported 1 record from QuickBooks"


def test_quickbooks_links_use_the_environments_web_app_and_the_records_id():
    assert wording.qbo_link("production", "invoice", "1011") == (
        "QuickBooks invoice 1011", "https://app.qbo.intuit.com/app/invoice?txnId=1011")
    assert wording.qbo_link("sandbox", "sales_receipt", "7") == (
        "QuickBooks sales receipt 7", "https://app.sandbox.qbo.intuit.com/app/salesreceipt?txnId=7")
    assert wording.qbo_link("https://example.test/discovery", "contact", "3")[1] == (
        "https://app.sandbox.qbo.intuit.com/app/customerdetail?nameId=3")
    assert wording.qbo_link("sandbox", "invoice", None) == (None, None)
    assert wording.qbo_link("sandbox", "item", "3") == (None, None)


def test_failures_lose_the_exception_name_and_get_advice():
    assert wording.plain_error("PushFailed: QuickBooks books are closed for 2026-11-15") == (
        "QuickBooks books are closed for 2026-11-15")
    assert wording.plain_error("Total mismatch: CRM 10.00") == "Total mismatch: CRM 10.00"
    assert wording.advice("QuickBooks books are closed for 2026-11-15").startswith("Once the date is in an open period")
    assert wording.advice("something unheard of") == wording.DEFAULT_ADVICE
    assert wording.ACTIONS.get("synced", []) == [] and wording.ACTIONS["failed"] == ["retry", "ignore"]


def test_a_xero_location_reads_xero_where_quickbooks_would_be_named():
    xero = wording.books_of("xero")
    assert wording.summary({"invoice": 2}, 1, 0, 0, 1, xero) == (
        "Sent 2 invoices to Xero · Received 1 change from Xero · 1 problem reading Xero")
    assert wording.advice("Reconnect required", xero) == "Reconnect Xero, then Retry."
    assert wording.speak("QuickBooks Online refused it at Intuit; Send to QuickBooks", xero) == (
        "Xero refused it at Xero; Send to Xero")
    assert wording.books_of(None) is wording.books_of("quickbooks") is wording.QUICKBOOKS
    assert wording.speak("QuickBooks Online", wording.QUICKBOOKS) == "QuickBooks Online"
