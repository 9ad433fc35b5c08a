"""The reference CRM with the plugin mounted, one location connected to a xero_sandbox
organisation (tokens the sandbox issued, stored as the connect flow would), and an in-process
worker: the shipped stack for end-to-end tests of a Xero location's sync.

The sandbox's clock runs a billion times slower than real time, so tokens, limit windows and
Idempotency-Key lifetimes move only when a test advances it (``/_sandbox/clock``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
from flask import Flask
from flask.testing import FlaskClient
from rq import SimpleWorker
from rq.serializers import JSONSerializer

from crm_qbo_plugin.onboarding.xero_connect import save_xero_connection
from crm_qbo_plugin.runtime.clients import xero_client_for
from crm_qbo_plugin.state import get_state
from crm_qbo_plugin.store.connections import store_settings
from crm_qbo_plugin.xero import Tokens, XeroClient
from reference_crm.app import create_app
from tests.support.crm_stack import CSRF, PASSWORD
from tests.support.reference_crm_app import close, crm_config, new_location
from tests.xero_sandbox.support import (
    CLIENT_ID,
    CLIENT_SECRET,
    REDIRECT_URI,
    connect,
    control,
    create_org,
    register_app,
)

WEBHOOK_PATH = "/integrations/quickbooks/xero/webhooks"
WEBHOOK_KEY = "xero-webhook-key-for-tests-0123456789"

# What the sandbox's NZ organisation has: the Sales revenue account, a bank account, no tax.
BOOKS = {"revenue_account_id": "200", "payment_account_id": "090", "tax_mapping": {"none": "NONE"}}


@dataclass
class XeroStack:
    app: Flask
    client: FlaskClient
    location: dict[str, Any]
    xero_url: str
    org: str  # the organisation's Xero tenant id
    url: str = ""  # where the CRM is served (Xero's webhooks go to url + WEBHOOK_PATH)

    @property
    def tenant(self) -> str:
        return str(self.location["id"])

    def api(self, method: str, path: str, **kw: Any) -> Any:
        """A call to the CRM's JSON API with the location's key."""
        return self.client.open(path, method=method, headers=self.location["auth"], **kw)

    def sign_in(self) -> FlaskClient:
        """A browser-like client signed in as the location's owner."""
        web = self.app.test_client()
        token = CSRF.search(web.get("/login").text)
        assert token is not None
        answer = web.post("/login", data={"email": self.location["login"]["email"], "password": PASSWORD,
                                          "csrf_token": token.group(1)})
        assert answer.status_code == 302, answer.text
        return web

    def work(self) -> None:
        """Run every queued job in-process until the queue is empty."""
        state = get_state(self.app)
        with self.app.app_context():
            SimpleWorker([state.queue], connection=state.redis, serializer=JSONSerializer).work(burst=True)

    @contextmanager
    def xero(self) -> Iterator[XeroClient]:
        """The plugin's own client for the organisation (its tokens, from the database)."""
        with self.app.app_context(), closing(xero_client_for(get_state(self.app), self.org)) as client:
            yield client

    def control(self, verb: str, endpoint: str, **body: Any) -> Any:
        return control(self.xero_url, verb, endpoint, **body)

    def stats(self) -> dict[str, int]:
        """The sandbox's successful calls per endpoint so far."""
        answer = requests.get(f"{self.xero_url}/_sandbox/stats", timeout=10).json()
        return dict(answer["by_endpoint"])


def sent_invoice(stack: XeroStack, first_name: str = "Ada") -> dict[str, Any]:
    """A new contact's invoice (one 42.00 line) sent in the CRM, and the queue worked off."""
    contact = stack.api("POST", "/api/contacts", json={"first_name": first_name, "last_name": "Lovelace"}).json
    invoice = stack.api("POST", "/api/invoices", json={
        "contact_id": contact["id"], "lines": [{"name": "Gardening", "quantity": "1", "unit_price": "42.00"}]}).json
    assert stack.api("POST", f"/api/invoices/{invoice['id']}/send").status_code == 200
    stack.work()
    return dict(invoice)


def xero_overrides(xero_url: str) -> dict[str, str]:
    """CRM_QBO_XERO_* settings that point the plugin at this sandbox."""
    return {"CRM_QBO_XERO_CLIENT_ID": CLIENT_ID, "CRM_QBO_XERO_CLIENT_SECRET": CLIENT_SECRET,
            "CRM_QBO_XERO_BASE_URL": xero_url, "CRM_QBO_XERO_WEBHOOK_KEY": WEBHOOK_KEY,
            "CRM_QBO_XERO_REDIRECT_URI": REDIRECT_URI}


@contextmanager
def xero_sandbox() -> Iterator[str]:
    """A fresh xero_sandbox on a loopback port (its clock nearly stopped)."""
    from xero_sandbox import create_app as create_sandbox
    from xero_sandbox.clock import Clock
    from xero_sandbox.server import serve_in_thread

    with serve_in_thread(create_sandbox(Clock(speed=1e-9), aggregation_seconds=0)) as url:
        yield url


def connect_xero(app: Flask, tenant: str, xero_url: str, org: str, **settings: Any) -> None:
    """Connect `tenant` to the organisation as the connect flow would, with the card's settings
    (`settings` override BOOKS). The cutoff is a second in the past, so events right after count."""
    state = get_state(app)
    tokens = Tokens.from_token_response(connect(xero_url, tenant_ids=[org]))
    now = datetime.now(UTC) - timedelta(seconds=1)
    with app.app_context():
        save_xero_connection(state, tenant, org, tokens, now=now)
        store_settings(state.engine, tenant, {}, lambda _current: {**BOOKS, **settings}, now)


@contextmanager
def xero_crm_stack(plugin_config: dict[str, Any], xero_url: str, location: dict[str, Any] | None = None,
                   connected: bool = True, org_spec: dict[str, Any] | None = None,
                   **settings: Any) -> Iterator[XeroStack]:
    """A fresh NZD location of the reference CRM, served on a loopback port, connected to a new NZ
    organisation whose app sends its webhooks to the CRM."""
    from qbo_sandbox.server import serve_in_thread

    app = create_app(crm_config({**plugin_config, **xero_overrides(xero_url)}))
    try:
        with serve_in_thread(app) as crm_url:
            org = create_org(xero_url, **{"country": "NZ", **(org_spec or {})})
            register_app(xero_url, webhook_url=crm_url + WEBHOOK_PATH, webhook_key=WEBHOOK_KEY)
            client = app.test_client()
            made = new_location(client, currency="NZD", **(location or {}))
            if connected:
                connect_xero(app, made["id"], xero_url, org, **settings)
            yield XeroStack(app, client, made, xero_url, org, crm_url)
    finally:
        close(app)
