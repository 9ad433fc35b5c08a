"""Tenant isolation for EVERY route of the reference CRM with the plugin mounted (F36).

Two locations, Alpha and Beta, both connected to their own QuickBooks company, Beta with a contact,
a sent invoice, a payment and plugin records. Signed in as Alpha's user (pages, plugin card and API)
or with Alpha's API key (CRM API), every route is called with Beta's ids where it takes ids (→ 404)
and plainly where it does not (→ Alpha's own data only). Afterwards Beta's rows in every table, CRM
and plugin alike, are exactly as before, and no answer mentions Beta's ids, company or realm.

The routes come from `app.url_map`: a route without an entry in CHECKS fails the test, so a new
route cannot ship without its isolation check.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from crm_qbo_plugin.state import get_state
from crm_qbo_plugin.store.tables import Link, SyncRun
from crm_qbo_plugin.store.types import utcnow
from reference_crm.app import create_app
from reference_crm.state import crm_state
from tests.support.connected import connect_directly
from tests.support.reference_crm_app import close, crm_config, new_location
from tests.support.sandbox_qbo import create_company, plugin_overrides, register_app

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
P = "/integrations/quickbooks"


@pytest.fixture
def world(plugin_config, sandbox_url):
    register_app(sandbox_url)
    app = create_app(crm_config({**plugin_config, **plugin_overrides(sandbox_url)}))
    client = app.test_client()
    alpha, beta = new_location(client, "Alpha"), new_location(client, "Beta")
    alpha_realm = create_company(sandbox_url, name="Alpha Books")
    beta_realm = create_company(sandbox_url, name="Beta Secret Books")
    connect_directly(app, alpha["id"], sandbox_url, alpha_realm, revenue_account_id="1")
    connect_directly(app, beta["id"], sandbox_url, beta_realm, revenue_account_id="1")
    auth = beta["auth"]
    contact = client.post("/api/contacts", headers=auth, json={"first_name": "Bea", "email": "bea@beta.example.com"}).json
    invoice = client.post("/api/invoices", headers=auth, json={
        "contact_id": contact["id"], "lines": [{"name": "Secret work", "quantity": "1", "unit_price": "10"}]}).json
    client.post(f"/api/invoices/{invoice['id']}/send", headers=auth)
    draft = client.post("/api/invoices", headers=auth, json={
        "contact_id": contact["id"], "lines": [{"name": "Draft work", "quantity": "1", "unit_price": "5"}]}).json
    payment = client.post("/api/payments", headers=auth, json={
        "source": "invoice", "invoice_id": invoice["id"], "amount": "1.00"}).json
    state = get_state(app)
    with state.engine.begin() as conn:
        for kind, crm_id in (("contact", contact["id"]), ("invoice", invoice["id"]), ("payment", payment["id"])):
            conn.execute(sa.insert(Link.__table__).values(  # type: ignore[attr-defined]
                tenant_id=beta["id"], kind=kind, crm_id=crm_id, qbo_id=None, origin="crm", status="failed",
                last_error="Beta's own problem", generation=0, detail={}, updated_at=utcnow()))
        conn.execute(sa.insert(SyncRun.__table__).values(  # type: ignore[attr-defined]
            tenant_id=beta["id"], kind="import", status="succeeded", counts={"customers": 1}, errors=[],
            started_at=utcnow(), finished_at=utcnow()))
    ids = {"contact": contact["id"], "invoice": invoice["id"], "draft": draft["id"], "payment": payment["id"]}
    yield {"app": app, "client": client, "alpha": alpha, "beta": beta, "ids": ids, "beta_realm": beta_realm}
    close(app)


def snapshot(app) -> dict[str, set[tuple[Any, ...]]]:
    """Every row of every table (CRM's crm_ and the plugin's qbo_), as tuples."""
    engine = crm_state(app).engine
    with engine.connect() as conn:
        names = sa.inspect(conn).get_table_names()
        meta = sa.MetaData()
        meta.reflect(conn, only=names)
        return {name: {tuple(str(v) for v in row) for row in conn.execute(sa.select(meta.tables[name]))} for name in names}


def sign_in(client, email: str) -> str:
    token = CSRF.search(client.get("/login").get_data(as_text=True)).group(1)
    answer = client.post("/login", data={"email": email, "password": "correct horse battery", "csrf_token": token})
    assert answer.status_code == 302
    return CSRF.search(client.get("/contacts").get_data(as_text=True)).group(1)


Check = Callable[[Any, dict[str, Any]], list[Any]]


def _api(method: str, path: str, **kw: Any) -> Check:
    """A plugin API call as Alpha's signed-in user (with the CSRF header for writes)."""
    def call(client, w):
        headers = {"X-CSRF-Token": w["api_csrf"]}
        return [client.open(P + "/api" + path.format(**w["ids"]), method=method, headers=headers, **kw)]
    return call


def _crm(method: str, path: str, json: Any = None) -> Check:
    """A CRM API call with Alpha's key."""
    def call(client, w):
        return [client.open(path.format(**w["ids"]), method=method, headers=w["alpha"]["auth"], json=json)]
    return call


def _page(method: str, path: str, data: dict[str, str] | None = None) -> Check:
    def call(client, w):
        if method == "GET":
            return [client.get(path.format(**w["ids"]))]
        return [client.post(path.format(**w["ids"]), data={**(data or {}), "csrf_token": w["page_csrf"]})]
    return call


def _each(*checks: Check) -> Check:
    def call(client, w):
        return [answer for check in checks for answer in check(client, w)]
    return call


RECORD_KINDS = [("contact", "contact"), ("invoice", "invoice"), ("payment", "payment"), ("sales_receipt", "payment")]

# (rule, method) → the calls made as Alpha, and the statuses each may answer.
CHECKS: dict[tuple[str, str], tuple[Check, set[int]]] = {
    # -- the plugin ------------------------------------------------------------------------------
    (P + "/", "GET"): (_page("GET", P + "/"), {200}),
    (P + "/connect", "POST"): (lambda c, w: [c.post(P + "/connect", data={"csrf_token": w["card_csrf"]})], {303}),
    (P + "/callback", "GET"): (lambda c, w: [c.get(P + "/callback", query_string={
        "code": "stolen", "state": "forged", "realmId": w["beta_realm"]})], {400}),
    (P + "/unlink", "POST"): (lambda c, w: [c.post(P + "/unlink", data={"csrf_token": "wrong"})], {400}),
    (P + "/webhooks", "POST"): (lambda c, w: [c.post(P + "/webhooks", data=b"{}")], {401}),
    # Xero's callback and webhooks: refused without state / signature (here no Xero app is configured).
    (P + "/xero/callback", "GET"): (lambda c, w: [c.get(P + "/xero/callback", query_string={
        "code": "stolen", "state": "forged"})], {400}),
    (P + "/xero/webhooks", "POST"): (lambda c, w: [c.post(P + "/xero/webhooks", data=b"{}")], {404}),
    # Totals over every tenant, labelled by outcome only; off (404) without CRM_QBO_METRICS_TOKEN.
    (P + "/metrics", "GET"): (lambda c, w: [c.get(P + "/metrics")], {404}),
    (P + "/events", "POST"): (lambda c, w: [c.post(P + "/events", data=b"{}")], {401}),
    (P + "/static/<path:filename>", "GET"): (lambda c, w: [c.get(P + "/static/card.css")], {200}),
    (P + "/api/openapi.json", "GET"): (_api("GET", "/openapi.json"), {200}),
    (P + "/api/status", "GET"): (_api("GET", "/status"), {200}),
    (P + "/api/settings", "GET"): (_api("GET", "/settings"), {200}),
    (P + "/api/settings", "PATCH"): (_api("PATCH", "/settings", json={"auto_sync": False}), {200}),
    (P + "/api/accounts", "GET"): (_api("GET", "/accounts"), {200}),
    (P + "/api/tax-codes", "GET"): (_api("GET", "/tax-codes"), {200}),
    (P + "/api/sync-runs", "GET"): (_api("GET", "/sync-runs"), {200}),
    (P + "/api/records", "GET"): (_each(_api("GET", "/records"), _api("GET", "/records?status=failed"),
                                       _api("GET", "/records?q=Bea"), _api("GET", "/records?q=bea%40beta.example.com")), {200}),
    (P + "/api/history", "GET"): (_api("GET", "/history"), {200}),
    (P + "/api/sync-now", "POST"): (_api("POST", "/sync-now"), {202}),
    (P + "/api/records/<kind>/<crm_id>", "GET"): (
        _each(*[_api("GET", f"/records/{kind}/{{{key}}}") for kind, key in RECORD_KINDS]), {404}),
    (P + "/api/records/<kind>/<crm_id>/retry", "POST"): (
        _each(*[_api("POST", f"/records/{kind}/{{{key}}}/retry") for kind, key in RECORD_KINDS]), {404}),
    (P + "/api/records/<kind>/<crm_id>/ignore", "POST"): (
        _each(*[_api("POST", f"/records/{kind}/{{{key}}}/ignore") for kind, key in RECORD_KINDS]), {404}),
    # -- the CRM's API ---------------------------------------------------------------------------
    ("/api/openapi.json", "GET"): (_crm("GET", "/api/openapi.json"), {200}),
    ("/api/locations", "POST"): (_crm("POST", "/api/locations", {"name": "X", "user": {"email": "x@x.example.com"}}), {401}),
    ("/api/location", "GET"): (_crm("GET", "/api/location"), {200}),
    ("/api/tax-rates", "GET"): (_crm("GET", "/api/tax-rates"), {200}),
    ("/api/tax-rates", "POST"): (_crm("POST", "/api/tax-rates", {"name": "Alpha tax", "rate_percent": "5"}), {201}),
    ("/api/contacts", "GET"): (_crm("GET", "/api/contacts"), {200}),
    ("/api/contacts", "POST"): (_crm("POST", "/api/contacts", {"first_name": "Al"}), {201}),
    ("/api/contacts/<contact_id>", "GET"): (_crm("GET", "/api/contacts/{contact}"), {404}),
    ("/api/contacts/<contact_id>", "PATCH"): (_crm("PATCH", "/api/contacts/{contact}", {"first_name": "Eve"}), {404}),
    ("/api/invoices", "GET"): (_each(_crm("GET", "/api/invoices"), _crm("GET", "/api/invoices?contact_id={contact}")), {200}),
    ("/api/invoices", "POST"): (_crm("POST", "/api/invoices", {"contact_id": "{contact}", "lines": [
        {"name": "x", "quantity": "1", "unit_price": "1"}]}), {404, 422}),
    ("/api/invoices/<invoice_id>", "GET"): (_each(_crm("GET", "/api/invoices/{invoice}"), _crm("GET", "/api/invoices/{draft}")), {404}),
    ("/api/invoices/<invoice_id>", "PATCH"): (_crm("PATCH", "/api/invoices/{draft}", {"due_date": "2099-01-01"}), {404}),
    ("/api/invoices/<invoice_id>", "DELETE"): (_crm("DELETE", "/api/invoices/{draft}"), {404}),
    ("/api/invoices/<invoice_id>/send", "POST"): (_crm("POST", "/api/invoices/{draft}/send"), {404}),
    ("/api/invoices/<invoice_id>/void", "POST"): (_crm("POST", "/api/invoices/{invoice}/void"), {404}),
    ("/api/payments", "GET"): (_each(_crm("GET", "/api/payments"), _crm("GET", "/api/payments?invoice_id={invoice}")), {200}),
    ("/api/payments", "POST"): (_each(
        _crm("POST", "/api/payments", {"source": "invoice", "invoice_id": "{invoice}", "amount": "1.00"}),
        _crm("POST", "/api/payments", {"source": "membership", "contact_id": "{contact}", "amount": "1.00"})), {404, 422}),
    ("/api/payments/<payment_id>", "GET"): (_crm("GET", "/api/payments/{payment}"), {404}),
    ("/api/automation-log", "GET"): (_crm("GET", "/api/automation-log"), {200}),
    ("/api/messages", "GET"): (_crm("GET", "/api/messages"), {200}),
    # -- the CRM's pages -------------------------------------------------------------------------
    ("/", "GET"): (_page("GET", "/"), {302}),
    ("/login", "GET"): (_page("GET", "/login"), {200, 302}),
    ("/login", "POST"): (lambda c, w: [c.post("/login", data={"email": "owner@beta.example.com", "password": "wrong password!",
                                                            "csrf_token": w["page_csrf"]})], {200, 400, 401}),
    ("/logout", "POST"): (lambda c, w: [], set()),  # last: see the test
    ("/contacts", "GET"): (_page("GET", "/contacts"), {200}),
    ("/contacts/new", "GET"): (_page("GET", "/contacts/new"), {200}),
    ("/contacts/new", "POST"): (_page("POST", "/contacts/new", {"first_name": "Al2"}), {302}),
    ("/contacts/<contact_id>", "GET"): (_page("GET", "/contacts/{contact}"), {404}),
    ("/contacts/<contact_id>/edit", "GET"): (_page("GET", "/contacts/{contact}/edit"), {404}),
    ("/contacts/<contact_id>/edit", "POST"): (_page("POST", "/contacts/{contact}/edit", {"first_name": "Eve"}), {404}),
    ("/invoices", "GET"): (_page("GET", "/invoices"), {200}),
    ("/invoices/new", "GET"): (_page("GET", "/invoices/new"), {200}),
    ("/invoices/new", "POST"): (_page("POST", "/invoices/new", {"contact_id": "{contact}", "line-0-name": "x",
                                                               "line-0-quantity": "1", "line-0-unit_price": "1"}), {200, 400, 404, 422}),
    ("/invoices/<invoice_id>", "GET"): (_page("GET", "/invoices/{invoice}"), {404}),
    ("/invoices/<invoice_id>/<action>", "POST"): (_each(*[_page("POST", f"/invoices/{{{key}}}/{action}", {"amount": "1.00"})
                                                          for key, action in (("draft", "send"), ("invoice", "void"),
                                                                              ("draft", "delete"), ("invoice", "pay"))]), {404}),
    ("/qbo/<kind>/<record_id>/retry", "POST"): (_each(_page("POST", "/qbo/invoice/{invoice}/retry"),
                                                       _page("POST", "/qbo/contact/{contact}/retry")), {404}),
    ("/qbo/invoice/<invoice_id>/export", "POST"): (_page("POST", "/qbo/invoice/{invoice}/export"), {404}),
    ("/payments", "GET"): (_page("GET", "/payments"), {200}),
    ("/payments/new", "GET"): (_page("GET", "/payments/new"), {200}),
    ("/payments/new", "POST"): (_page("POST", "/payments/new", {"source": "membership", "contact_id": "{contact}",
                                                               "amount": "1.00"}), {200, 400, 404, 422}),
    ("/automations", "GET"): (_page("GET", "/automations"), {200}),
    ("/settings", "GET"): (_page("GET", "/settings"), {200}),
    ("/settings/tax-rates", "POST"): (_page("POST", "/settings/tax-rates", {"name": "Alpha VAT", "rate_percent": "7"}), {302}),
    ("/settings/integrations", "GET"): (_page("GET", "/settings/integrations"), {200}),
    ("/static/<path:filename>", "GET"): (lambda c, w: [], set()),  # files only (no records), listed for completeness
}


IDS_IN_BODY = {("/api/invoices", "POST"), ("/api/payments", "POST"), ("/invoices/new", "POST"), ("/payments/new", "POST")}


def routes(app) -> set[tuple[str, str]]:
    return {(rule.rule, method) for rule in app.url_map.iter_rules()
            for method in rule.methods - {"HEAD", "OPTIONS"}}


def test_every_route_has_an_isolation_check(world):
    missing = routes(world["app"]) - set(CHECKS)
    assert not missing, f"routes without a tenant-isolation check in {__name__}.CHECKS: {sorted(missing)}"
    assert not set(CHECKS) - routes(world["app"]), "CHECKS lists routes that no longer exist"


def test_alpha_can_never_read_or_change_betas_records_on_any_route(world):
    app, client, alpha, beta = world["app"], world["client"], world["alpha"], world["beta"]
    world["page_csrf"] = sign_in(client, alpha["login"]["email"])
    world["api_csrf"] = world["card_csrf"] = client.get(P + "/api/status").headers["X-CSRF-Token"]
    before = snapshot(app)
    secrets = [*world["ids"].values(), beta["id"], world["beta_realm"], "Beta Secret Books", "bea@beta.example.com",
               "Beta's own problem", "Secret work"]
    for route, (check, statuses) in CHECKS.items():
        for answer in check(client, world):
            assert answer.status_code in statuses, (route, answer.status_code, answer.get_data(as_text=True)[:300])
            body = answer.get_data(as_text=True)
            sent = answer.request.url + (" ".join(world["ids"].values()) if route in IDS_IN_BODY else "")
            leaked = [s for s in secrets if s in body and s not in sent]  # echoing what was sent is no leak
            assert not leaked, (route, leaked)
    client.post("/logout", data={"csrf_token": world["page_csrf"]})
    after = snapshot(app)
    # Only Alpha's rows (or rows naming no location, such as Alpha's OAuth state) may have changed.
    for table in before:
        changed = before[table] ^ after[table]
        foreign = [row for row in changed if beta["id"] in row or world["beta_realm"] in row]
        assert not foreign, (table, foreign)
    assert after["crm_contact"] - before["crm_contact"], "Alpha's own writes went through"
