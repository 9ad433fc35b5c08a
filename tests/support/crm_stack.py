"""The reference CRM with the plugin mounted, served on a loopback port, connected to a sandbox
company that sends it webhooks, and an in-process worker: the shipped stack, for end-to-end tests
of what a CRM user does and what comes back from QuickBooks."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import requests
from flask import Flask
from flask.testing import FlaskClient
from rq import SimpleWorker
from rq.serializers import JSONSerializer

from crm_qbo_plugin.qbo import QboClient
from crm_qbo_plugin.runtime.clients import client_for
from crm_qbo_plugin.state import get_state
from qbo_sandbox.server import serve_in_thread
from reference_crm.app import create_app
from tests.support.connected import connect_directly
from tests.support.reference_crm_app import close, crm_config, new_location
from tests.support.sandbox_qbo import create_company, plugin_overrides, register_app

WEBHOOK_PATH = "/integrations/quickbooks/webhooks"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
PASSWORD = "correct horse battery"  # what new_location gives the owner


@dataclass
class CrmStack:
    app: Flask
    client: FlaskClient
    location: dict[str, Any]
    sandbox_url: str
    realm: str
    url: str = ""  # where the CRM is served (for a browser)

    @property
    def tenant(self) -> str:
        return str(self.location["id"])

    def api(self, method: str, path: str, **kw: Any) -> Any:
        """A call to the CRM's JSON API with the location's key."""
        return self.client.open(path, method=method, headers=self.location["auth"], **kw)

    def sign_in(self) -> tuple[FlaskClient, str]:
        """A browser-like client signed in as the location's owner, and its CSRF token."""
        web = self.app.test_client()
        token = CSRF.search(web.get("/login").text)
        assert token is not None
        answer = web.post("/login", data={"email": self.location["login"]["email"], "password": PASSWORD,
                                          "csrf_token": token.group(1)})
        assert answer.status_code == 302, answer.text
        page = CSRF.search(web.get("/contacts").text)
        assert page is not None
        return web, page.group(1)

    def work(self) -> None:
        """Run every queued job in-process until the queue is empty."""
        state = get_state(self.app)
        with self.app.app_context():
            SimpleWorker([state.queue], connection=state.redis, serializer=JSONSerializer).work(burst=True)

    def sync(self) -> None:
        """Push what is queued, then deliver the sandbox's webhooks and process them, until quiet."""
        for _ in range(5):
            self.work()
            answer = requests.post(f"{self.sandbox_url}/_sandbox/webhooks/deliver", json={}, timeout=30)
            answer.raise_for_status()
            if not answer.json()["delivered"]:
                break
        self.work()

    @contextmanager
    def qbo(self) -> Iterator[QboClient]:
        state = get_state(self.app)
        with self.app.app_context(), client_for(state, self.realm) as client:
            yield client


@contextmanager
def crm_stack(plugin_config: dict[str, Any], sandbox_url: str, company: dict[str, Any] | None = None,
              location: dict[str, Any] | None = None, **settings: Any) -> Iterator[CrmStack]:
    """A fresh location of the reference CRM connected to a new sandbox company (`company` adds to
    its spec, `location` to the location's, e.g. tax_rates; `settings` go on the connection, e.g.
    review_request=True)."""
    app = create_app(crm_config({**plugin_config, **plugin_overrides(sandbox_url)}))
    try:
        with serve_in_thread(app) as crm_url:
            register_app(sandbox_url, webhook_url=crm_url + WEBHOOK_PATH)
            realm = create_company(sandbox_url, limits={"enabled": False}, **(company or {}))
            client = app.test_client()
            made = new_location(client, **(location or {}))
            connect_directly(app, made["id"], sandbox_url, realm, **{"revenue_account_id": "1", **settings})
            yield CrmStack(app, client, made, sandbox_url, realm, crm_url)
    finally:
        close(app)
