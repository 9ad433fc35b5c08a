"""QBO Customer → CRM Contact mapping."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from crm_qbo_plugin import Contact, Origin
from crm_qbo_plugin.mapping.contact import contact_from_customer, display_name, same_contact
from crm_qbo_plugin.qbo import jsoncodec


def test_the_intuit_sample_customer_maps_to_a_contact(samples_dir):
    customer = jsoncodec.loads((samples_dir / "customer-read-response.json").read_bytes())["Customer"]
    contact = contact_from_customer(customer, "c-9")
    assert contact.id == "c-9" and contact.origin is Origin.QBO and contact.active is True
    assert contact.email == customer["PrimaryEmailAddr"]["Address"]
    assert contact.first_name == customer.get("GivenName", "") or contact.company_name
    assert contact.updated_at is not None and contact.updated_at.tzinfo is not None


def test_an_inactive_customer_is_flagged_and_loses_the_deleted_suffix():
    body = {"Id": "7", "DisplayName": "Thrifty Meats (deleted)", "Active": False,
            "MetaData": {"LastUpdatedTime": "2015-07-23T10:58:12-07:00"}}
    contact = contact_from_customer(body, "c-7")
    assert (contact.first_name, contact.last_name, contact.active) == ("Thrifty", "Meats", False)
    assert contact.updated_at == datetime(2015, 7, 23, 17, 58, 12, tzinfo=UTC)
    assert display_name(body) == "Thrifty Meats"


def test_a_company_customer_keeps_its_company_name_and_names_stay_empty():
    contact = contact_from_customer({"DisplayName": "Acme", "CompanyName": "Acme Ltd", "PrimaryPhone": {"FreeFormNumber": " 555 "}}, "c")
    assert (contact.first_name, contact.last_name, contact.company_name, contact.phone, contact.email) == ("", "", "Acme Ltd", "555", None)


def test_same_contact_ignores_email_case_origin_and_times():
    a = Contact(id="1", email="A@x.com", first_name="A", origin=Origin.CRM)
    b = Contact(id="1", email="a@x.com", first_name="A", origin=Origin.QBO, updated_at=datetime.now(UTC))
    assert same_contact(a, b)
    assert not same_contact(a, Contact(id="1", email="a@x.com", first_name="B"))
    assert json.dumps(display_name({})) == '""'
