"""Rate limits (429 with Retry-After, X-Rate-Limit-Problem and the remaining-count headers) as both
SDKs see them, injected faults, and webhooks: the intent-to-receive check, signed deliveries a
receiver verifies with the documented HMAC, payments showing as invoice updates, retries."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
import requests
from flask import Flask, request
from xero_python.accounting import Account, Contact, Contacts, Invoice, Invoices, LineItem, Payment
from xero_python.exceptions import HTTPStatusException, RateLimitException

from tests.xero_sandbox.support import CLIENT_ID, connect, control, create_org, register_app


def _url(xp) -> str:
    return str(xp.accounting.base_url.rsplit("/api.xro", 1)[0])


def test_minute_limit_with_both_sdks(xp, px, tenant_id):
    from xero.exceptions import XeroRateLimitExceeded

    url = _url(xp)
    control(url, "PATCH", f"organisations/{tenant_id}", limits={"per_minute": 3})
    _data, status, headers = xp.accounting.get_contacts(tenant_id, _return_http_data_only=False)
    assert status == 200
    assert (headers["X-MinLimit-Remaining"], headers["X-DayLimit-Remaining"],
            headers["X-AppMinLimit-Remaining"]) == ("2", "4999", "9999")
    px.contacts.all()
    xp.accounting.get_contacts(tenant_id)
    with pytest.raises(RateLimitException) as xp_429:  # a POST: urllib3 does not retry it
        xp.accounting.update_or_create_contacts(tenant_id, Contacts(contacts=[Contact(name="X")]))
    assert xp_429.value.rate_limit == "minute"
    assert 1 <= int(xp_429.value.headers["Retry-After"]) <= 60
    assert xp_429.value.headers["X-MinLimit-Remaining"] == "0"
    with pytest.raises(XeroRateLimitExceeded) as px_429:
        px.contacts.all()
    assert px_429.value.response.headers["X-Rate-Limit-Problem"] == "minute"
    assert px_429.value.errors == ["rate limit exceeded: minute"]
    control(url, "POST", "clock", advance_seconds=61)
    assert xp.accounting.get_contacts(tenant_id).contacts == []  # the refused POST wrote nothing
    stats = control(url, "GET", "stats")
    assert (stats["throttled"], stats["by_status"]["429"]) == (2, 2)


def test_day_and_app_minute_limits(xp, px, tenant_id):
    from xero.exceptions import XeroRateLimitExceeded

    url = _url(xp)
    control(url, "PATCH", f"organisations/{tenant_id}", limits={"per_day": 2})
    px.contacts.all()
    px.contacts.all()
    with pytest.raises(XeroRateLimitExceeded) as day:
        px.contacts.all()
    assert day.value.response.headers["X-Rate-Limit-Problem"] == "day"
    assert 86000 < int(day.value.response.headers["Retry-After"]) <= 86400
    assert day.value.response.headers["X-DayLimit-Remaining"] == "0"

    control(url, "PATCH", f"organisations/{tenant_id}", limits={"per_day": 5000})
    second = create_org(url, name="Second Org", country="GB")
    both = connect(url, tenant_ids=[tenant_id, second])
    control(url, "POST", "limits", app_per_minute=3)  # 2 calls in this minute already counted
    headers = {"Authorization": f"Bearer {both['access_token']}", "xero-tenant-id": second}
    answer = requests.get(f"{url}/api.xro/2.0/Organisation", headers=headers, timeout=10)
    assert answer.status_code == 200 and answer.headers["X-AppMinLimit-Remaining"] == "0"
    assert answer.json()["Organisations"][0]["BaseCurrency"] == "GBP"
    refused = requests.get(f"{url}/api.xro/2.0/Organisation", headers=headers, timeout=10)
    assert (refused.status_code, refused.headers["X-Rate-Limit-Problem"]) == (429, "appminute")


def test_five_in_flight_per_organisation(xp, tenant_id):
    url = _url(xp)
    control(url, "POST", "latency", latency_ms=1500)  # long enough that all 7 overlap
    access = xp.store["token"]["access_token"]
    statuses: list[tuple[int, str | None]] = []
    barrier = threading.Barrier(7)

    def call() -> None:
        barrier.wait()
        answer = requests.get(f"{url}/api.xro/2.0/Contacts", timeout=10, headers={
            "Authorization": f"Bearer {access}", "xero-tenant-id": tenant_id})
        statuses.append((answer.status_code, answer.headers.get("X-Rate-Limit-Problem")))

    threads = [threading.Thread(target=call) for _ in range(7)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses, key=str) == [(200, None)] * 5 + [(429, "concurrent")] * 2
    assert control(url, "GET", "stats")["max_in_flight"] == {tenant_id: 5}


def test_injected_faults(xp, px, tenant_id):
    from xero.exceptions import XeroInternalError, XeroNotAvailable, XeroUnauthorized

    url = _url(xp)
    control(url, "POST", "faults", path="/Contacts", status=503, body="Service Unavailable",
            times=1)
    with pytest.raises(XeroNotAvailable):
        px.contacts.all()
    assert px.contacts.all() == []  # fired once
    control(url, "POST", "faults", path="/Invoices", method="GET", status=500, times=1)
    with pytest.raises(XeroInternalError):
        px.invoices.all()
    control(url, "POST", "faults", path="/Contacts", rate_limit="minute", retry_after=7, times=1)
    with pytest.raises(RateLimitException) as limited:
        xp.accounting.update_or_create_contacts(tenant_id, Contacts(contacts=[Contact(name="Y")]))
    assert (limited.value.rate_limit, limited.value.headers["Retry-After"]) == ("minute", "7")
    control(url, "POST", "faults", path="/api.xro/", token_error="expired", times=1)
    with pytest.raises(XeroUnauthorized, match="TokenExpired"):
        px.organisations.all()
    control(url, "POST", "faults", path="/connect/token", status=500, times=1)
    with pytest.raises(HTTPStatusException) as token_fault:
        xp.client.refresh_oauth2_token()
    assert token_fault.value.status == 500
    control(url, "POST", "faults", path="/Organisation", latency_ms=50, times=1)
    assert px.organisations.all()[0]["Name"] == "Acme Ltd"
    faults = control(url, "GET", "faults")["faults"]
    assert [f["fired"] for f in faults] == [1, 1, 1, 1, 1, 1]
    assert control(url, "GET", "stats")["faults_injected"] == 6


class Receiver:
    """A CRM's webhook endpoint: verifies x-xero-signature as Xero documents (200 or 401)."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.mode = "verify"  # verify | fail | always-200
        self.bodies: list[dict[str, Any]] = []
        self.app = Flask("receiver")
        self.app.add_url_rule("/xero/webhooks", "hook", self.hook, methods=["POST"])

    def hook(self) -> tuple[str, int]:
        raw = request.get_data()
        if self.mode == "fail":
            return "", 500
        if self.mode == "always-200":
            return "", 200
        mac = base64.b64encode(hmac.new(self.key.encode(), raw, hashlib.sha256).digest()).decode()
        if not hmac.compare_digest(mac, request.headers.get("x-xero-signature", "")):
            return "", 401
        self.bodies.append(json.loads(raw))
        return "", 200


@pytest.fixture
def receiver(xero_url) -> Iterator[tuple[Receiver, str]]:
    from xero_sandbox.server import serve_in_thread

    hook = Receiver("")
    with serve_in_thread(hook.app) as url:
        yield hook, f"{url}/xero/webhooks"


def test_webhooks_intent_to_receive_signed_events_and_retries(xp, tenant_id, receiver):
    url = _url(xp)
    hook, hook_url = receiver
    app = control(url, "PATCH", f"apps/{CLIENT_ID}", webhook_url=hook_url)
    hook.key = app["webhook_key"]
    assert app["webhook_status"] == "PENDING"
    xp.accounting.create_contacts(tenant_id, Contacts(contacts=[Contact(name="Before ITR")]))
    hook.mode = "always-200"  # an endpoint that does not check signatures fails the check
    failed = control(url, "POST", f"apps/{CLIENT_ID}/intent-to-receive")
    assert (failed["passed"], failed["webhook_status"]) == (False, "PENDING")
    hook.mode = "verify"
    passed = control(url, "POST", f"apps/{CLIENT_ID}/intent-to-receive")
    assert passed["passed"] is True and passed["webhook_status"] == "OK"
    assert sorted((r["correctly_signed"], r["status"]) for r in passed["results"]) == [
        (False, 401), (False, 401), (True, 200), (True, 200)]
    assert hook.bodies == [{"events": [], "firstEventSequence": 0, "lastEventSequence": 0,
                            "entropy": b["entropy"]} for b in hook.bodies] and len(hook.bodies) == 2
    hook.bodies.clear()

    contact = xp.accounting.create_contacts(tenant_id, Contacts(contacts=[
        Contact(name="Hooked")])).contacts[0]
    xp.accounting.update_contact(tenant_id, contact.contact_id, Contacts(contacts=[
        Contact(first_name="Changed")]))
    invoice = xp.accounting.create_invoices(tenant_id, Invoices(invoices=[Invoice(
        type="ACCREC", contact=Contact(contact_id=contact.contact_id), status="AUTHORISED",
        line_items=[LineItem(description="x", quantity=1, unit_amount=10, account_code="200")])])
    ).invoices[0]
    xp.accounting.create_payment(tenant_id, Payment(
        invoice=Invoice(invoice_id=invoice.invoice_id), account=Account(code="090"),
        amount=Decimal("11.50"), date=date(2026, 5, 1)))
    assert control(url, "POST", "webhooks/deliver", force=True) == {
        "delivered": 1, "failed": 0, "pending": 0}
    [body] = hook.bodies
    events = [(e["eventCategory"], e["eventType"], e["resourceId"]) for e in body["events"]]
    assert events == [("CONTACT", "CREATE", contact.contact_id),
                      ("CONTACT", "UPDATE", contact.contact_id),
                      ("INVOICE", "CREATE", invoice.invoice_id),
                      ("INVOICE", "UPDATE", invoice.invoice_id)]  # the payment
    assert (body["firstEventSequence"], body["lastEventSequence"]) == (1, 4)
    event = body["events"][3]
    assert event["tenantId"] == tenant_id and event["tenantType"] == "ORGANISATION"
    assert event["resourceUrl"] == f"{url}/api.xro/2.0/Invoices/{invoice.invoice_id}"
    thin = requests.get(event["resourceUrl"], timeout=10, headers={
        "Authorization": f"Bearer {xp.store['token']['access_token']}", "xero-tenant-id": tenant_id})
    assert thin.json()["Invoices"][0]["Status"] == "PAID"

    hook.mode = "fail"
    xp.accounting.update_contact(tenant_id, contact.contact_id, Contacts(contacts=[
        Contact(last_name="Again")]))
    assert control(url, "POST", "webhooks/deliver", force=True)["failed"] == 1
    assert control(url, "POST", "webhooks/deliver")["failed"] == 1  # retried at once
    assert control(url, "POST", "webhooks/deliver") == {"delivered": 0, "failed": 0, "pending": 1}
    control(url, "POST", "clock", advance_seconds=900)
    hook.mode = "verify"
    assert control(url, "POST", "webhooks/deliver")["delivered"] == 1
    assert [e["eventType"] for e in hook.bodies[-1]["events"]] == ["UPDATE"]
    log = control(url, "GET", "webhooks")
    assert [d["status"] for d in log["deliveries"]] == ["delivered", "delivered"]
    assert log["deliveries"][1]["attempts"] == 3


def test_webhook_disabled_after_a_day_of_failures(xp, tenant_id, receiver):
    url = _url(xp)
    hook, hook_url = receiver
    app = control(url, "PATCH", f"apps/{CLIENT_ID}", webhook_url=hook_url)
    hook.key = app["webhook_key"]
    assert control(url, "POST", f"apps/{CLIENT_ID}/intent-to-receive")["passed"] is True
    hook.mode = "fail"
    xp.accounting.create_contacts(tenant_id, Contacts(contacts=[Contact(name="Lost?")]))
    control(url, "POST", "webhooks/deliver", force=True)
    control(url, "POST", "webhooks/deliver")
    control(url, "POST", "clock", advance_seconds=86400)
    control(url, "POST", "webhooks/deliver")
    assert control(url, "GET", "apps")["apps"][0]["webhook_status"] == "DISABLED"
    # events are kept; after a new intent-to-receive check they go out in order
    hook.mode = "verify"
    assert control(url, "POST", f"apps/{CLIENT_ID}/intent-to-receive")["passed"] is True
    assert control(url, "POST", "webhooks/deliver", force=True)["delivered"] == 1
    assert [e["eventType"] for e in hook.bodies[-1]["events"]] == ["CREATE"]


def test_register_app_with_webhook(xero_url):
    app = register_app(xero_url, client_id="OTHER", webhook_url="http://127.0.0.1:9/hook")
    assert app["webhook_status"] == "PENDING" and len(app["webhook_key"]) >= 40
