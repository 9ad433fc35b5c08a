"""The plugin's JSON API: scoped to the signed-in user's location, validated, documented."""

from __future__ import annotations

import pytest
from sqlmodel import select

from crm_qbo_plugin import HostUser
from crm_qbo_plugin.state import get_state
from crm_qbo_plugin.store.db import session
from crm_qbo_plugin.store.tables import Link, SyncRun
from tests.support.connected import connect_directly
from tests.support.plugin_app import create_app
from tests.support.sandbox_qbo import create_company, plugin_overrides, register_app

API = "/integrations/quickbooks/api"
ALICE = HostUser(id="u-alice", tenant="loc-1")
BOB = HostUser(id="u-bob", tenant="loc-2")


@pytest.fixture
def api_app(plugin_config, fake_host, sandbox_url):
    register_app(sandbox_url)
    app = create_app({**plugin_config, **plugin_overrides(sandbox_url), "SECRET_KEY": "k"}, fake_host)
    app.config["SANDBOX_URL"] = sandbox_url
    fake_host.user = ALICE
    yield app
    get_state(app).engine.dispose()
    get_state(app).redis.close()


class CsrfClient:
    """The card's way of calling the API: the X-CSRF-Token from any answer goes back on writes."""

    def __init__(self, client) -> None:
        self.client, self.token = client, ""

    def get(self, path):
        response = self.client.get(path)
        self.token = response.headers.get("X-CSRF-Token", self.token)
        return response

    def patch(self, path, json):
        if not self.token:
            self.get(API + "/status")
        return self.client.patch(path, json=json, headers={"X-CSRF-Token": self.token})

    def post(self, path, json=None):
        if not self.token:
            self.get(API + "/status")
        return self.client.post(path, json=json or {}, headers={"X-CSRF-Token": self.token})


def test_writes_need_the_csrf_header(api_app):
    client = api_app.test_client()
    assert client.patch(API + "/settings", json={"auto_sync": False}).status_code == 403
    assert client.patch(API + "/settings", json={"auto_sync": False}, headers={"X-CSRF-Token": "forged"}).status_code == 403
    assert CsrfClient(client).patch(API + "/settings", json={"auto_sync": False}).status_code == 200


def test_everything_needs_a_signed_in_user(api_app, fake_host):
    fake_host.user = None
    client = api_app.test_client()
    for path in ("/status", "/settings", "/records", "/sync-runs", "/accounts", "/tax-codes"):
        assert client.get(API + path).status_code == 401, path
    refused = client.patch(API + "/settings", json={"auto_sync": False})
    assert refused.status_code == 401
    # It names no accounting system: the location may keep its books in either.
    assert "Sign in to the CRM to manage the accounting integration." in refused.get_data(as_text=True)


def test_status_before_and_after_connecting(api_app):
    client = api_app.test_client()
    before = client.get(API + "/status").json
    assert before["status"] == "disconnected" and before["setup"]["complete"] is False
    realm = create_company(api_app.config["SANDBOX_URL"], name="Acme Books")
    connect_directly(api_app, "loc-1", api_app.config["SANDBOX_URL"], realm)
    after = client.get(API + "/status").json
    assert (after["status"], after["company_name"], after["country"], after["home_currency"]) == ("connected", "Acme Books", "US", "USD")
    assert after["setup"] == {"revenue_account_chosen": False, "taxes_confirmed": False, "currency_ok": True,
                              "currency_message": None, "taxes_mapped": True, "tax_mapping_needed": False,
                              "complete": False}


def test_settings_are_validated_against_quickbooks_and_persist(api_app):
    client = CsrfClient(api_app.test_client())
    realm = create_company(api_app.config["SANDBOX_URL"])
    connect_directly(api_app, "loc-1", api_app.config["SANDBOX_URL"], realm)
    accounts = client.get(API + "/accounts").json
    assert accounts and all(a["id"] for a in accounts)
    income = accounts[0]["id"]
    assert client.patch(API + "/settings", json={"revenue_account_id": income, "review_request": True}).status_code == 200
    stored = client.get(API + "/settings").json
    assert stored["revenue_account_id"] == income and stored["review_request"] is True
    assert client.get(API + "/status").json["setup"]["revenue_account_chosen"] is True
    bad = client.patch(API + "/settings", json={"revenue_account_id": "999999"})
    assert bad.status_code == 400 and "revenue_account_id" in bad.json["fields"]
    typo = client.patch(API + "/settings", json={"revenue_acount_id": income})
    assert typo.status_code == 400 and "revenue_acount_id" in typo.json["fields"]
    late = client.patch(API + "/settings", json={"import_invoices": True})
    assert late.status_code == 409 and "import_invoices" in late.json["fields"]
    codes = client.get(API + "/tax-codes").json
    assert codes
    unknown = client.patch(API + "/settings", json={"tax_mapping": {"vat": "NOPE"}})
    assert unknown.status_code == 400 and "NOPE" in unknown.json["fields"]["tax_mapping"]
    assert client.get(API + "/settings").json["revenue_account_id"] == income  # nothing half-written


def test_toggles_before_connecting_and_review_request_remembers_when_it_was_switched_on(api_app):
    client = CsrfClient(api_app.test_client())
    assert client.patch(API + "/settings", json={"import_invoices": True, "review_request": True}).status_code == 200
    state = get_state(api_app)
    from crm_qbo_plugin.onboarding.lifecycle import get_connection

    settings = get_connection(state, "loc-1").settings
    assert settings["import_invoices"] is True and "review_request_since" in settings
    assert client.patch(API + "/settings", json={"revenue_account_id": "1"}).status_code == 409


def test_records_and_runs_are_scoped_to_the_location(api_app, fake_host):
    state = get_state(api_app)
    with session(state.engine) as db:
        db.add(Link(tenant_id="loc-1", kind="invoice", crm_id="inv-1", qbo_id="5", origin="crm", status="failed", last_error="6210 books closed"))
        db.add(Link(tenant_id="loc-2", kind="invoice", crm_id="inv-9", qbo_id="7", origin="crm", status="synced"))
        db.add(SyncRun(tenant_id="loc-2", kind="cdc", status="succeeded"))
        db.commit()
    client = api_app.test_client()
    failed = client.get(API + "/records?status=failed").json
    assert [(r["crm_id"], r["last_error"]) for r in failed] == [("inv-1", "6210 books closed")]
    assert client.get(API + "/records/invoice/inv-9").status_code == 404
    assert client.get(API + "/sync-runs").json == []
    assert client.get(API + "/status").json["counts"] == {"failed": 1}
    assert client.get(API + "/records?status=weird").status_code == 400
    fake_host.user = BOB
    assert [r["crm_id"] for r in client.get(API + "/records").json] == ["inv-9"]
    assert client.get(API + "/records/invoice/inv-1").status_code == 404


def test_the_openapi_document_describes_every_route(api_app):
    doc = api_app.test_client().get(API + "/openapi.json").json
    assert doc["openapi"] == "3.0.3"
    routes = {rule.rule for rule in api_app.url_map.iter_rules() if rule.rule.startswith(API) and "openapi" not in rule.rule}
    documented = {path.replace("{", "<").replace("}", ">") for path in doc["paths"]}
    assert routes == documented
    assert set(doc["components"]["schemas"]) >= {"Status", "Settings", "Record", "SyncRun", "Problem"}


def test_contra_revenue_accounts_are_not_offered_or_accepted(api_app):
    client = CsrfClient(api_app.test_client())
    realm = create_company(api_app.config["SANDBOX_URL"])
    connect_directly(api_app, "loc-1", api_app.config["SANDBOX_URL"], realm)
    offered = client.get(API + "/accounts").json
    assert offered and all(a["account_type"] not in ("DiscountsRefundsGiven", "UnappliedCashPaymentIncome") for a in offered)
    from crm_qbo_plugin.qbo import eq
    from crm_qbo_plugin.runtime.clients import client_for

    with client_for(get_state(api_app), realm) as qbo:
        discounts = qbo.query_all("Account", where=[eq("AccountSubType", "DiscountsRefundsGiven")])
    assert discounts, "the sandbox company should have a discounts account"
    refused = client.patch(API + "/settings", json={"revenue_account_id": str(discounts[0]["Id"])})
    assert refused.status_code == 400 and "revenue_account_id" in refused.json["fields"]


def test_currency_check_and_tax_mapping_for_a_non_us_company(api_app, fake_host):
    from decimal import Decimal

    from crm_qbo_plugin import LocationProfile, Tax

    fake_host.profiles["loc-1"] = LocationProfile(currency="EUR", taxes=(Tax("vat20", "VAT 20%", Decimal("20")),))
    client = CsrfClient(api_app.test_client())
    realm = create_company(api_app.config["SANDBOX_URL"], country="GB", home_currency="GBP")
    connect_directly(api_app, "loc-1", api_app.config["SANDBOX_URL"], realm)
    status = client.get(API + "/status").json
    assert status["crm_taxes"] == [{"id": "vat20", "name": "VAT 20%", "rate_percent": "20"}]
    setup = status["setup"]
    assert (setup["currency_ok"], setup["tax_mapping_needed"], setup["taxes_mapped"]) == (False, True, False)
    assert "EUR" in setup["currency_message"] and "GBP" in setup["currency_message"]
    code = client.get(API + "/tax-codes").json[0]["id"]
    assert client.patch(API + "/settings", json={"tax_mapping": {"vat20": code}, "taxes_confirmed": True}).status_code == 200
    assert client.get(API + "/status").json["setup"]["taxes_mapped"] is True
    fake_host.profiles["loc-1"] = LocationProfile(currency="GBP", taxes=fake_host.profiles["loc-1"].taxes)
    account = client.get(API + "/accounts").json[0]["id"]
    client.patch(API + "/settings", json={"revenue_account_id": account})
    assert client.get(API + "/status").json["setup"]["complete"] is True


def test_retry_and_ignore_a_failed_record_of_your_own_location_only(api_app, fake_host):
    from datetime import UTC, datetime

    from crm_qbo_plugin.store.tables import OutboxEvent

    state = get_state(api_app)
    with session(state.engine) as db:
        db.add(Link(tenant_id="loc-1", kind="invoice", crm_id="inv-1", qbo_id=None, origin="crm", status="failed",
                    last_error="6210 books closed"))
        db.add(OutboxEvent(tenant_id="loc-1", event_key="e1", event_type="invoice.sent", subject_id="inv-1", origin="crm",
                           status="failed", request_id="r1", attempts=3, occurred_at=datetime.now(UTC), last_error="6210"))
        db.commit()
    client = CsrfClient(api_app.test_client())
    retried = client.post(API + "/records/invoice/inv-1/retry")
    assert retried.status_code == 202 and retried.json["status"] == "pending"
    with session(state.engine) as db:
        row = db.exec(select(OutboxEvent)).one()
    assert (row.status, row.attempts) == ("pending", 0)
    assert state.queue.count == 1
    ignored = client.post(API + "/records/invoice/inv-1/ignore")
    assert ignored.status_code == 200 and ignored.json["status"] == "ignored"
    assert client.post(API + "/records/invoice/nope/retry").status_code == 404
    assert client.post(API + "/records/martian/inv-1/ignore").status_code == 404
    fake_host.user = BOB
    other = CsrfClient(api_app.test_client())
    assert other.post(API + "/records/invoice/inv-1/retry").status_code == 404
    assert other.post(API + "/records/invoice/inv-1/ignore").status_code == 404


def test_sync_now_queues_a_poll_and_sends_what_waits_out_a_backoff(api_app):
    from datetime import UTC, datetime, timedelta

    from crm_qbo_plugin.store.tables import OutboxEvent

    client = CsrfClient(api_app.test_client())
    assert client.post(API + "/sync-now").status_code == 409
    realm = create_company(api_app.config["SANDBOX_URL"])
    connect_directly(api_app, "loc-1", api_app.config["SANDBOX_URL"], realm)
    state = get_state(api_app)
    with session(state.engine) as db:
        db.add(OutboxEvent(tenant_id="loc-1", event_key="e1", event_type="contact.updated", subject_id="c1", origin="crm",
                           status="pending", request_id="r1", attempts=2, occurred_at=datetime.now(UTC),
                           lease_until=datetime.now(UTC) + timedelta(minutes=20)))
        # A fresh row whose job is already queued (its enqueue lease runs): not sent a second time.
        db.add(OutboxEvent(tenant_id="loc-1", event_key="e2", event_type="contact.updated", subject_id="c2", origin="crm",
                           status="pending", request_id="r2", attempts=0, occurred_at=datetime.now(UTC),
                           lease_until=datetime.now(UTC) + timedelta(minutes=2)))
        db.commit()
    answer = client.post(API + "/sync-now")
    assert answer.status_code == 202 and answer.json == {"poll_queued": True, "outbox_requeued": 1}
    jobs = [job.func_name for job in state.queue.get_jobs()]
    assert sorted(jobs) == ["crm_qbo_plugin.jobs.inbound_tasks.poll_cdc", "crm_qbo_plugin.jobs.tasks.process_outbox"]
    # Clicking again while those jobs wait queues nothing more (a pile of duplicate jobs once
    # starved the tenant's webhook drains behind them).
    assert client.post(API + "/sync-now").json["outbox_requeued"] == 0
    assert len(state.queue.get_jobs()) == 2
