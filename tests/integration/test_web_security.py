"""Security issue 15 on the real reference CRM with the plugin mounted: where sign-in may send you,
anti-framing and caching headers, non-ASCII signatures and CSRF values, the webhook's own size
limit, the sign-in throttle, server-side sign-out, the Secure cookie, and lone surrogates in JSON."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest

from crm_qbo_plugin import sign_host_event
from qbo_sandbox.webhooks import sign
from reference_crm.app import create_app
from tests.support.plugin_app import HOST_ID, HOST_SECRET
from tests.support.reference_crm_app import close, crm_config, new_location, outbox
from tests.support.sandbox_qbo import VERIFIER
from tests.support.webhook_posts import WEBHOOK_PATH, legacy_body

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
EMAIL = "owner@downtown.example.com"
PASSWORD = "correct horse battery"
CARD = "/integrations/quickbooks/"
CRM_POLICY = "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'self'; frame-ancestors 'none'"


@pytest.fixture
def app(plugin_config):
    app = create_app(crm_config(plugin_config))
    yield app
    close(app)


@pytest.fixture
def frozen(monkeypatch):
    """The sign-in throttle's clock, moved only by the test (no timing in assertions)."""
    from reference_crm import signin

    clock = {"now": signin.utcnow()}
    monkeypatch.setattr(signin, "utcnow", lambda: clock["now"])
    return clock


def login(client, email: str = EMAIL, password: str = PASSWORD, query: str = "", **kwargs):
    token = CSRF.search(client.get("/login", **kwargs).get_data(as_text=True)).group(1)
    return client.post(f"/login{query}", data={"email": email, "password": password, "csrf_token": token}, **kwargs)


# -- 1. open redirect -------------------------------------------------------------------------------
@pytest.mark.parametrize("target", [
    "/%09/evil.example/phish", "/%09%09/evil.example/phish", "/%0A/evil.example/phish", "/%0D%0A/evil.example",
    "//evil.example/phish", "/%5Cevil.example/phish", "/%5C%5Cevil.example", "https://evil.example/phish",
    "/%20/evil.example", "/%00/evil.example", "%2F%2Fevil.example", "javascript:alert(1)",
])
def test_sign_in_never_sends_you_off_site(app, target):
    client = app.test_client()
    new_location(client)
    answer = login(client, query=f"?next={target}")
    assert (answer.status_code, answer.headers["Location"]) == (302, "/contacts")


def test_sign_in_returns_to_the_page_that_asked_for_it(app):
    client = app.test_client()
    new_location(client)
    assert client.get("/invoices").headers["Location"] == "/login?next=/invoices"
    answer = login(client, query="?next=/invoices")
    assert (answer.status_code, answer.headers["Location"]) == (302, "/invoices")


# -- 2. headers --------------------------------------------------------------------------------------
def test_crm_pages_and_the_card_cannot_be_framed_and_answers_are_not_cached(app):
    client = app.test_client()
    loc = new_location(client)
    login(client)
    for path in ("/login", "/contacts", "/settings/integrations"):
        answer = client.get(path)
        assert answer.headers.get_all("Content-Security-Policy") == [CRM_POLICY], path
        assert (answer.headers["X-Frame-Options"], answer.headers["X-Content-Type-Options"],
                answer.headers["Referrer-Policy"], answer.headers["Cache-Control"]) == (
            "DENY", "nosniff", "same-origin", "no-store"), path
    for path in (CARD, CARD + "api/status"):
        answer = client.get(path)
        assert answer.status_code == 200, path
        assert answer.headers.get_all("Content-Security-Policy") == ["frame-ancestors 'none'", CRM_POLICY]
        assert (answer.headers["X-Frame-Options"], answer.headers["X-Content-Type-Options"],
                answer.headers["Referrer-Policy"], answer.headers["Cache-Control"]) == (
            "DENY", "nosniff", "no-referrer", "no-store"), path
    api = client.get("/api/contacts", headers=loc["auth"])
    assert (api.status_code, api.headers["Cache-Control"], api.headers["X-Content-Type-Options"]) == (200, "no-store", "nosniff")
    assert "style=" not in client.get(CARD).get_data(as_text=True)  # the CSP forbids inline styles


# -- 3. non-ASCII signatures and CSRF values -----------------------------------------------------------
def event_for(tenant: str) -> bytes:
    return json.dumps({"tenant": tenant, "type": "payment.received", "subject_id": "pay-9", "key": "k-1",
                       "source": "subscription", "occurred_at": "2026-11-21T10:00:00+00:00"}).encode()


@pytest.mark.parametrize("signature", ["sha256=é", "é", "sha256=" + "é" * 64])
def test_a_non_ascii_host_event_signature_gets_401(app, signature):
    # a location the CRM knows: the plugin refuses events for tenants the host does not know (issue 15, item 8)
    event = event_for(new_location(app.test_client())["id"])
    answer = app.test_client().post(CARD + "events", data=event, headers={
        "Content-Type": "application/json", "X-CRM-Host": HOST_ID, "X-CRM-Signature": signature})
    assert answer.status_code == 401
    assert outbox(app) == []
    good = app.test_client().post(CARD + "events", data=event, headers={
        "Content-Type": "application/json", "X-CRM-Host": HOST_ID, "X-CRM-Signature": sign_host_event(event, HOST_SECRET)})
    assert good.status_code == 202


def test_non_ascii_csrf_values_are_refused_with_nothing_changed(app):
    client = app.test_client()
    loc = new_location(client)
    login(client)
    before = client.get(CARD + "api/settings").get_json()
    api = client.patch(CARD + "api/settings", json={"auto_sync": not before["auto_sync"]}, headers={"X-CSRF-Token": "é"})
    card = client.post(CARD + "connect", data={"csrf_token": "é"})
    page = client.post("/contacts/new", data={"first_name": "Eve", "csrf_token": "é"})
    assert (api.status_code, card.status_code, page.status_code) == (403, 400, 400)
    assert client.get(CARD + "api/settings").get_json() == before
    assert client.get("/api/contacts", headers=loc["auth"]).json == []


# -- 4. the webhook endpoint's own size limit ------------------------------------------------------------
def test_an_authentic_webhook_over_the_hosts_body_limit_is_accepted(app):
    assert app.config["MAX_CONTENT_LENGTH"] == 1024 * 1024
    body = json.dumps(legacy_body("4620816365999999999", [("Customer", "1", "Create", "2026-01-01T00:00:00Z")]))
    raw = (body + " " * (1536 * 1024)).encode()  # 1.5 MB: over the host's limit, under the endpoint's
    client = app.test_client()
    answer = client.post(WEBHOOK_PATH, data=raw, headers={"Content-Type": "application/json",
                                                          "intuit-signature": sign(raw, VERIFIER)})
    assert (answer.status_code, answer.get_json()) == (200, {"recorded": 1, "duplicates": 0, "dead": 1})
    too_big = b" " * (2 * 1024 * 1024 + 1)
    refused = client.post(WEBHOOK_PATH, data=too_big, headers={"intuit-signature": sign(too_big, VERIFIER)})
    assert refused.status_code == 413 and "2097152 bytes" in refused.get_json()["error"]


# -- 9. sign-in throttle, server-side sign-out, Secure cookie --------------------------------------------
def test_a_password_storm_is_throttled_per_account_with_back_off(app, frozen):
    client = app.test_client()
    new_location(client)
    answers = [login(client, password=f"guess {n}") for n in range(60)]
    statuses = [a.status_code for a in answers]
    assert statuses == [401] * 5 + [429] * 55
    assert answers[5].headers["Retry-After"] == "1" and "Too many sign-in attempts" in answers[5].get_data(as_text=True)
    blocked = login(client)  # even the right password waits: it is not checked while blocked
    assert blocked.status_code == 429 and client.get("/contacts").status_code == 302
    frozen["now"] += timedelta(seconds=1)
    assert login(client, password="guess again").status_code == 401  # the 6th failure doubles the wait
    assert login(client).headers["Retry-After"] == "2"
    frozen["now"] += timedelta(seconds=2)
    assert login(client).status_code == 302 and client.get("/contacts").status_code == 200
    client.post("/logout", data={"csrf_token": CSRF.search(client.get("/contacts").get_data(as_text=True)).group(1)})
    assert login(client, password="one slip").status_code == 401  # a success cleared the account's count


def test_many_accounts_from_one_address_are_throttled_per_address(app, frozen):
    client = app.test_client()
    new_location(client)
    attacker = {"environ_base": {"REMOTE_ADDR": "203.0.113.9"}}
    statuses = [login(client, f"user{n}@example.com", "guess", **attacker).status_code for n in range(21)]
    assert statuses == [401] * 20 + [429]
    assert login(client, **attacker).status_code == 429
    assert login(client, environ_base={"REMOTE_ADDR": "198.51.100.7"}).status_code == 302


def test_signing_out_ends_the_session_on_the_server(app):
    client = app.test_client()
    new_location(client)
    login(client)
    assert client.get("/contacts").status_code == 200 and client.get(CARD).status_code == 200
    stolen = client.get_cookie("session").value
    client.post("/logout", data={"csrf_token": CSRF.search(client.get("/contacts").get_data(as_text=True)).group(1)})
    replay = app.test_client()
    replay.set_cookie("session", stolen)
    assert replay.get("/contacts").status_code == 302
    assert replay.get(CARD).status_code == 401
    assert replay.get(CARD + "api/status").status_code == 401


def test_the_session_cookie_is_secure_over_https(app):
    client = app.test_client()
    new_location(client)
    over_https = login(client, base_url="https://crm.example.com")
    assert over_https.status_code == 302 and "; Secure" in over_https.headers["Set-Cookie"]
    over_http = login(app.test_client())
    assert over_http.status_code == 302 and "Secure" not in over_http.headers["Set-Cookie"]


# -- 10. lone surrogates in JSON ---------------------------------------------------------------------------
@pytest.mark.parametrize(("path", "raw", "field"), [
    ("/api/contacts", '{"first_name": "\\ud800"}', "first_name"),
    ("/api/contacts", '{"company": "Acme \\udfff Ltd"}', "company"),
    ("/api/contacts", '{"\\ud800": "x"}', "\\ud800"),
    ("/api/tax-rates", '{"name": "\\udc00", "rate_percent": "5"}', "name"),
])
def test_a_lone_surrogate_in_json_gets_400_naming_the_field(app, path, raw, field):
    client = app.test_client()
    loc = new_location(client)
    answer = client.post(path, data=raw, headers={**loc["auth"], "Content-Type": "application/json"})
    assert answer.status_code == 400, answer.get_data(as_text=True)
    assert list(answer.json["errors"]["json"]) == [field]
    assert client.get("/api/contacts", headers=loc["auth"]).json == []
    assert client.get("/api/tax-rates", headers=loc["auth"]).json == []


def test_a_lone_surrogate_in_an_invoice_line_gets_400_naming_the_line_field(app):
    client = app.test_client()
    loc = new_location(client)
    contact = client.post("/api/contacts", headers=loc["auth"], json={"first_name": "Ada"}).json
    raw = json.dumps({"contact_id": contact["id"], "lines": [{"name": "Gardening", "quantity": "1", "unit_price": "2",
                                                              "tax_ids": ["SURROGATE"]}]}).replace("SURROGATE", "\\ud83d")
    answer = client.post("/api/invoices", data=raw, headers={**loc["auth"], "Content-Type": "application/json"})
    assert answer.status_code == 400, answer.get_data(as_text=True)
    assert answer.json["errors"]["json"] == {"lines.0.tax_ids.0": ["must not contain lone surrogates (invalid Unicode)"]}
    assert client.get("/api/invoices", headers=loc["auth"]).json == []
