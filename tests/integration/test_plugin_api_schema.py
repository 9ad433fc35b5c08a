"""Schemathesis against the plugin's OpenAPI document: every generated request gets a documented
status and a body that matches the schema — no 500s, no schema violations."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from crm_qbo_plugin import HostUser
from crm_qbo_plugin.state import get_state
from tests.support.connected import connect_directly
from tests.support.plugin_app import create_app
from tests.support.sandbox_qbo import create_company, plugin_overrides, register_app

OPENAPI = "/integrations/quickbooks/api/openapi.json"


@pytest.fixture
def signed_in(plugin_config, fake_host, sandbox_url):
    register_app(sandbox_url)
    app = create_app({**plugin_config, **plugin_overrides(sandbox_url), "SECRET_KEY": "schema"}, fake_host)
    connect_directly(app, "loc-1", sandbox_url, create_company(sandbox_url))
    fake_host.user = HostUser(id="u-1", tenant="loc-1")
    client = app.test_client()
    first = client.get("/integrations/quickbooks/api/status")
    cookie = first.headers["Set-Cookie"].split(";", 1)[0]
    app.config["SCHEMA_HEADERS"] = {"Cookie": cookie, "X-CSRF-Token": first.headers["X-CSRF-Token"]}
    yield app
    get_state(app).engine.dispose()


def test_the_api_honours_its_openapi_document(signed_in):
    schema = schemathesis.openapi.from_wsgi(OPENAPI, signed_in)
    headers = signed_in.config["SCHEMA_HEADERS"]
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 12

    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case) -> None:
            case.call_and_validate(headers=headers)

        check()
