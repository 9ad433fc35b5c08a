"""Malformed requests get a clear 4xx (never a 500) and change nothing."""

from __future__ import annotations

import pytest
import requests

from tests.xero_sandbox.support import connect

BAD_WRITES = [
    ("PUT", "Contacts", b"{not json", "application/json"),
    ("PUT", "Contacts", b"<Contacts><Contact><Name>x</Name></Contacts>", "application/xml"),
    ("PUT", "Contacts", b'<!DOCTYPE x [<!ENTITY a "b">]><Contact><Name>&a;</Name></Contact>',
     "application/xml"),
    ("PUT", "Contacts", b'{"Contacts": [{"Name": {"nested": 1}}]}', "application/json"),
    ("PUT", "Contacts", b'{"Contacts": [{"Name": "x", "ContactStatus": "GONE"}]}', "application/json"),
    ("PUT", "Items", b'{"Items": [{"Code": "A", "SalesDetails": {"UnitPrice": "abc"}}]}',
     "application/json"),
    ("PUT", "Invoices", b'{"Invoices": [{"Type": "ACCREC", "Contact": {"Name": "N"}, '
     b'"LineItems": [{"Quantity": "1e400", "UnitAmount": 1}]}]}', "application/json"),
    ("PUT", "Invoices", b'{"Invoices": [{"Type": "ACCREC", "Contact": {"Name": "N"}, '
     b'"LineItems": "lots"}]}', "application/json"),
    ("PUT", "Invoices", b'{"Invoices": [{"Type": "ACCREC", "Contact": {"Name": "N"}, '
     b'"Date": {"y": 1}, "LineItems": []}]}', "application/json"),
    ("PUT", "Invoices", b'{"Invoices": [{"Type": "ACCREC", "Contact": {}, "LineItems": []}]}',
     "application/json"),
    ("PUT", "Invoices", b'{"Invoices": [{"Type": "ACCREC", "Contact": {"Name": "N"}, '
     b'"LineAmountTypes": "EXCLUSIVE", "LineItems": []}]}', "application/json"),
    ("PUT", "Payments", b'{"Payments": [{"Invoice": "x", "Amount": {"a": 1}}]}', "application/json"),
    ("PUT", "Invoices", b'[1, 2, 3]', "application/json"),
    ("GET", "Contacts?where=Name%3D%3D", b"", "application/json"),
    ("GET", "Contacts?page=abc", b"", "application/json"),
    ("GET", "Contacts?order=Name%20SIDEWAYS", b"", "application/json"),
]


@pytest.mark.parametrize(("verb", "path", "body", "content_type"), BAD_WRITES)
def test_bad_requests_are_refused_without_trace(xero_url, tenant_id, verb, path, body, content_type):
    token = connect(xero_url, tenant_ids=[tenant_id])["access_token"]
    headers = {"Authorization": f"Bearer {token}", "xero-tenant-id": tenant_id,
               "Content-Type": content_type}
    answer = requests.request(verb, f"{xero_url}/api.xro/2.0/{path}", data=body, headers=headers,
                              timeout=10)
    assert answer.status_code == 400, answer.text
    assert answer.json()["Type"] in ("ValidationException", "QueryParseException")
    counts = requests.get(f"{xero_url}/_sandbox/organisations/{tenant_id}", timeout=10).json()["counts"]
    assert counts == {"contacts": 0, "items": 0, "invoices": 0, "payments": 0}
