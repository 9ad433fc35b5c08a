"""The card's field mapping, applied by the pure mapping functions (property-tested), and the
record badge a host shows."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from crm_qbo_plugin.host import Contact, Invoice, InvoiceStatus, LineItem
from crm_qbo_plugin.mapping.customer import customer_fields
from crm_qbo_plugin.mapping.field_map import DEFAULTS, TARGETS, problems, resolved
from crm_qbo_plugin.mapping.invoice import Company, crm_marker, invoice_body
from crm_qbo_plugin.mapping.names import clean_text, utf16_len
from crm_qbo_plugin.outbound.badge import badge_of
from crm_qbo_plugin.store.tables import Link

text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=5000)
choices = st.fixed_dictionaries({}, optional={field: st.sampled_from(list(targets)) for field, targets in TARGETS.items()})


def _invoice(number: str | None) -> Invoice:
    return Invoice(id="inv1", contact_id="c1", number=number, status=InvoiceStatus.SENT, currency="USD",
                   issue_date=date(2026, 3, 1), due_date=None, lines=(LineItem(name="Work", quantity=Decimal(1), unit_price=Decimal(10)),),
                   total=Decimal("10.00"))


@settings(max_examples=150, deadline=None)
@given(number=st.one_of(st.none(), text), mapping=choices, custom=st.booleans())
def test_the_invoice_number_goes_only_where_mapped_and_fits_quickbooks_limits(number, mapping, custom):
    body = invoice_body("t1", _invoice(number), Company(us=True, home_currency="USD", custom_txn_numbers=custom,
                                                        field_mapping=mapping), "7", {"name:work": "9"})
    target = resolved(mapping)["invoice.number"]
    marker = crm_marker("t1", "inv1")
    assert body["PrivateNote"].startswith(marker)  # a retry still finds the invoice it made
    assert utf16_len(body["PrivateNote"]) <= 4000
    assert utf16_len(body.get("DocNumber", "")) <= 21
    assert utf16_len(body.get("CustomerMemo", {}).get("value", "")) <= 1000
    assert ("DocNumber" in body) == (target == "DocNumber" and custom and bool(clean_text(number)))
    assert ("CustomerMemo" in body) == (target == "CustomerMemo" and "CustomerMemo" in body)
    if target != "PrivateNote":
        assert body["PrivateNote"] == marker
    if target != "CustomerMemo":
        assert "CustomerMemo" not in body


def test_each_target_of_the_invoice_number():
    def body(target: str) -> dict:
        company = Company(us=True, home_currency="USD", custom_txn_numbers=True, field_mapping={"invoice.number": target})
        return invoice_body("t1", _invoice("INV-1007"), company, "7", {"name:work": "9"})

    assert (body("DocNumber")["DocNumber"], body("DocNumber")["PrivateNote"]) == ("INV-1007", "CRM ref: t1/inv1")
    assert ("DocNumber" in body("PrivateNote"), body("PrivateNote")["PrivateNote"]) == (False, "CRM ref: t1/inv1 · Invoice INV-1007")
    assert body("CustomerMemo")["CustomerMemo"] == {"value": "Invoice INV-1007"}
    assert {"DocNumber", "CustomerMemo"} & set(body("none")) == set()
    # no mapping stored: today's behaviour
    assert invoice_body("t1", _invoice("INV-1007"), Company(us=True, home_currency="USD", custom_txn_numbers=True),
                        "7", {"name:work": "9"})["DocNumber"] == "INV-1007"


@settings(max_examples=100, deadline=None)
@given(contact_id=st.text(min_size=1, max_size=3000), mapping=choices)
def test_the_contact_reference_goes_only_where_mapped_and_fits(contact_id, mapping):
    body = customer_fields(Contact(id=contact_id, email=None, first_name="Ada"), "Ada", field_mapping=mapping)
    if resolved(mapping)["contact.id"] == "Notes" and clean_text(contact_id):
        assert body["Notes"].startswith("CRM contact") and utf16_len(body["Notes"]) <= 2000
    else:
        assert "Notes" not in body
    assert body["DisplayName"] == "Ada" and body["GivenName"] == "Ada"


@given(st.dictionaries(st.text(max_size=20), st.text(max_size=20), max_size=4))
def test_only_offered_choices_validate_and_resolve(mapping):
    ok = all(field in TARGETS and target in TARGETS[field] for field, target in mapping.items())
    assert (problems(mapping) == {}) == ok
    assert set(resolved(mapping)) == set(DEFAULTS)
    assert resolved(mapping) == {**DEFAULTS, **(mapping if ok else {k: v for k, v in mapping.items()
                                                                     if k in TARGETS and v in TARGETS[k]})}


def test_defaults_are_todays_behaviour():
    assert DEFAULTS == {"invoice.number": "DocNumber", "contact.id": "none"}
    assert problems({"invoice.number": "Memo", "invoice.total": "DocNumber"}) == {
        "invoice.number": "must be one of DocNumber, PrivateNote, CustomerMemo, none",
        "invoice.total": "not a mapped CRM field (one of invoice.number, contact.id)"}


def test_the_badge_splits_reason_and_what_to_do_and_builds_the_quickbooks_address():
    failed = Link(tenant_id="t", kind="invoice", crm_id="i1", origin="crm", status="failed",
                  last_error="QuickBooks books are closed for 2026-11-15; change the date or reopen the period")
    badge = badge_of(failed, "123", sandbox=True)
    assert (badge.label, badge.reason, badge.action, badge.qbo_url, badge.can_retry, badge.can_export) == (
        "failed", "QuickBooks books are closed for 2026-11-15", "change the date or reopen the period", None, True, False)
    synced = Link(tenant_id="t", kind="contact", crm_id="c1", origin="crm", status="synced", qbo_id="58")
    badge = badge_of(synced, "123", sandbox=False)
    assert (badge.label, badge.reason, badge.qbo_url, badge.can_retry) == (
        "synced", None, "https://app.qbo.intuit.com/app/customerdetail?nameId=58", False)
    held = Link(tenant_id="t", kind="invoice", crm_id="i2", origin="crm", status="not_synced", last_error="x",
                detail={"reason": "export_off"})
    badge = badge_of(held, "123", sandbox=True)
    assert (badge.label, badge.reason, badge.can_export, badge.can_retry) == (
        "not exported", "automatic export is off", True, False)
