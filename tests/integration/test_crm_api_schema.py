"""Schemathesis against the reference CRM's OpenAPI document (/api/openapi.json), with a
location's key: every generated request gets a documented status and a body matching the schema
— no 500s, no schema violations. (Found: the tax rate's `maximum` was emitted as the string "100".) (The plugin's own API: test_plugin_api_schema.py.)"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from reference_crm.app import create_app
from tests.support.reference_crm_app import close, crm_config, new_location

OPENAPI = "/api/openapi.json"


@pytest.fixture
def crm(plugin_config):
    app = create_app(crm_config(plugin_config))
    client = app.test_client()
    location = new_location(client, "Schema")
    contact = client.post("/api/contacts", headers=location["auth"], json={"first_name": "Ada", "email": "ada@example.com"}).json
    client.post("/api/invoices", headers=location["auth"], json={
        "contact_id": contact["id"], "lines": [{"name": "Work", "quantity": "1", "unit_price": "10"}]})
    app.config["SCHEMA_HEADERS"] = location["auth"]
    yield app
    close(app)


def test_the_crm_api_honours_its_openapi_document(crm):
    schema = schemathesis.openapi.from_wsgi(OPENAPI, crm)
    headers = crm.config["SCHEMA_HEADERS"]
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 18

    unsupported = []
    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case) -> None:
            # Amounts are refused beyond their decimal places (money is never rounded); JSON Schema
            # cannot say so for floats exactly, so a generated 1e-308 gets a documented 422.
            case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])

        try:
            check()
        except schemathesis.core.errors.UnsupportedSchema:
            unsupported.append(f"{operation.method.upper()} {operation.path}")
    assert unsupported == [], unsupported
