"""Nothing a user does vanishes (issue #14, items 1, 2 and 6), on the reference CRM with the plugin
mounted, the sandbox's real OAuth flow and a real worker:

1. Invoices sent and payments taken while QuickBooks is disconnected are kept as "not synced"
   records (records API, card counts); reconnecting does not push them, Retry sends each once.
2. Changes parked while the connection needs reconnecting are listed as pending, with the reason,
   and reach QuickBooks by themselves after reconnecting.
6. CRM edits and deletes of imported (QuickBooks-owned) invoices stay local and are marked
   "changed in the CRM only" on the card's API and the invoice page; reconcile lists them as known
   local changes; a CRM payment on an imported invoice is not such a change.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest
import requests
from click.testing import CliRunner
from flask.cli import ScriptInfo
from sqlmodel import select

from crm_qbo_plugin.cli import plugin_cli
from crm_qbo_plugin.reconcile.run import reconcile
from crm_qbo_plugin.state import get_state
from crm_qbo_plugin.store.token_store import DbTokenStore
from reference_crm.app import create_app
from tests.integration.outbound_helpers import run_worker
from tests.support.reference_crm_app import close, crm_config, new_location
from tests.support.sandbox_qbo import (
    CLIENT_ID,
    CLIENT_SECRET,
    approve,
    create_company,
    plugin_overrides,
    register_app,
)

P = "/integrations/quickbooks"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
CARD_CSRF = re.compile(r'data-csrf="([^"]+)"')


class World:
    def __init__(self, plugin_config: dict[str, Any], sandbox_url: str) -> None:
        register_app(sandbox_url)
        self.sandbox = sandbox_url
        self.app = create_app(crm_config({**plugin_config, **plugin_overrides(sandbox_url)}))
        self.client = self.app.test_client()
        location = new_location(self.client, "Downtown")
        self.tenant, self.auth = location["id"], location["auth"]
        self.realm = create_company(sandbox_url, name="Downtown Books")
        page = CSRF.search(self.client.get("/login").get_data(as_text=True))
        assert page is not None
        answer = self.client.post("/login", data={"email": "owner@downtown.example.com",
                                                 "password": "correct horse battery", "csrf_token": page.group(1)})
        assert answer.status_code == 302
        self.api_csrf = ""

    # -- the card ------------------------------------------------------------------------------
    def card_csrf(self) -> str:
        found = CARD_CSRF.search(self.client.get(P + "/").get_data(as_text=True))
        assert found is not None
        return found.group(1)

    def connect(self, **form: str) -> None:
        """Connect (or reconnect) through the card and the sandbox's consent page."""
        answer = self.client.post(P + "/connect", data={"csrf_token": self.card_csrf(), **form})
        assert answer.status_code == 303
        params = approve(answer.headers["Location"], self.realm)
        assert self.client.get(P + "/callback", query_string=params).status_code == 303
        self.api("PATCH", "/settings", {"revenue_account_id": "1", "taxes_confirmed": True})

    def disconnect(self) -> None:
        assert self.client.post(P + "/unlink", data={"csrf_token": self.card_csrf()}).status_code == 303

    def api(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        if not self.api_csrf:
            self.api_csrf = self.client.get(P + "/api/status").headers["X-CSRF-Token"]
        answer = self.client.open(P + "/api" + path, method=method, json=body, headers={"X-CSRF-Token": self.api_csrf})
        assert answer.status_code == expect, (path, answer.status_code, answer.json)
        return answer.json

    def record(self, kind: str, crm_id: str) -> tuple[str, str | None]:
        body = self.api("GET", f"/records/{kind}/{crm_id}")
        return body["status"], body["last_error"]

    # -- the CRM and QuickBooks ----------------------------------------------------------------
    def crm(self, method: str, path: str, body: Any = None) -> Any:
        answer = self.client.open("/api" + path, method=method, json=body, headers=self.auth)
        assert answer.status_code in (200, 201, 204), (path, answer.status_code, answer.data)
        return answer.json if answer.data else None

    def sent_invoice(self, contact_id: str, price: str = "40.00") -> dict[str, Any]:
        draft = self.crm("POST", "/invoices", {"contact_id": contact_id, "lines": [
            {"name": "Gardening", "quantity": "2", "unit_price": price}]})
        return dict(self.crm("POST", f"/invoices/{draft['id']}/send"))

    def qbo(self, method: str, path: str, body: Any = None) -> Any:
        token = requests.post(f"{self.sandbox}/_sandbox/tokens", json={"realm_id": self.realm, "client_id": CLIENT_ID},
                              timeout=10).json()["access_token"]
        kwargs: dict[str, Any] = {"json": body} if path != "query" else {"data": body}
        answer = requests.request(method, f"{self.sandbox}/v3/company/{self.realm}/{path}", timeout=10,
                                  headers={"Authorization": f"Bearer {token}", "Accept": "application/json",
                                           "Content-Type": "application/text" if path == "query" else "application/json"},
                                  **kwargs)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def qbo_all(self, entity: str) -> list[dict[str, Any]]:
        return list(self.qbo("POST", "query", f"select * from {entity}")["QueryResponse"].get(entity, []))

    def work(self) -> None:
        run_worker(self.app)


@pytest.fixture
def world(plugin_config, sandbox_url):
    w = World(plugin_config, sandbox_url)
    yield w
    close(w.app)


def test_changes_made_while_disconnected_are_kept_as_not_synced_and_retry_sends_each_once(world):
    world.connect()
    card = world.client.get(P + "/").get_data(as_text=True)
    assert "not sent by themselves after you reconnect" in card and "Retry sends it to QuickBooks once" in card
    contact = world.crm("POST", "/contacts", {"first_name": "Ada", "email": "ada@example.com"})
    earlier = world.sent_invoice(contact["id"], price="10.00")
    world.work()
    world.disconnect()
    invoice = world.sent_invoice(contact["id"])
    receipt = world.crm("POST", "/payments", {"source": "membership", "contact_id": contact["id"], "amount": "25.00"})
    world.crm("PATCH", f"/invoices/{earlier['id']}", {"lines": [{"name": "Gardening", "quantity": "3", "unit_price": "10.00"}]})
    world.work()

    assert world.record("invoice", invoice["id"]) == (
        "not_synced", "not synced — sent while QuickBooks was disconnected; Retry sends it to QuickBooks")
    assert world.record("sales_receipt", receipt["id"]) == (
        "not_synced", "not synced — taken while QuickBooks was disconnected; Retry sends it to QuickBooks")
    assert world.record("invoice", earlier["id"]) == (
        "not_synced", "not synced — changed while QuickBooks was disconnected; Retry sends it to QuickBooks")
    listed = world.api("GET", "/records?status=not_synced")
    assert sorted((r["kind"], r["crm_id"]) for r in listed) == sorted(
        [("invoice", invoice["id"]), ("invoice", earlier["id"]), ("sales_receipt", receipt["id"])])
    assert world.api("GET", "/status")["counts"] == {"not_synced": 3, "synced": 1}  # and the contact

    world.connect()  # the same company: nothing held is pushed by itself, nor marked synced by news from it
    world.work()
    assert (sorted(Decimal(str(i["TotalAmt"])) for i in world.qbo_all("Invoice")), world.qbo_all("SalesReceipt")) == (
        [Decimal("20.00")], [])
    assert world.record("invoice", invoice["id"])[0] == "not_synced"
    assert world.record("invoice", earlier["id"])[0] == "not_synced"

    for _ in range(2):  # a double click
        for kind, crm_id in (("invoice", invoice["id"]), ("invoice", earlier["id"]), ("sales_receipt", receipt["id"])):
            world.api("POST", f"/records/{kind}/{crm_id}/retry", expect=202)
    world.work()
    world.api("POST", f"/records/invoice/{invoice['id']}/retry", expect=202)  # and once more later
    world.api("POST", f"/records/sales_receipt/{receipt['id']}/retry", expect=202)
    world.work()
    invoices, receipts = world.qbo_all("Invoice"), world.qbo_all("SalesReceipt")
    assert sorted(Decimal(str(i["TotalAmt"])) for i in invoices) == [Decimal("30.00"), Decimal("80.00")]
    assert [Decimal(str(r["TotalAmt"])) for r in receipts] == [Decimal("25.00")]
    assert world.record("invoice", invoice["id"]) == ("synced", None)
    assert world.record("invoice", earlier["id"]) == ("synced", None)
    assert world.record("sales_receipt", receipt["id"]) == ("synced", None)
    with world.app.app_context():
        assert reconcile(get_state(world.app), world.tenant).result.differences == []


def test_changes_waiting_for_a_reconnect_are_listed_as_pending_with_the_reason(world):
    world.connect()
    contact = world.crm("POST", "/contacts", {"first_name": "Bo", "email": "bo@example.com"})
    world.work()
    state = get_state(world.app)
    # The user disconnects the app at Intuit: our refresh token is revoked; an hour passes.
    refresh = DbTokenStore(state.engine, state.cipher).load(world.realm).refresh_token
    requests.post(f"{world.sandbox}/v2/oauth2/tokens/revoke", json={"token": refresh},
                  auth=(CLIENT_ID, CLIENT_SECRET), timeout=10)
    requests.post(f"{world.sandbox}/_sandbox/clock", json={"advance_seconds": 3700}, timeout=10)
    invoice = world.sent_invoice(contact["id"])
    world.work()

    assert world.api("GET", "/status")["status"] == "needs_reconnect"
    waiting = ("pending", "waiting for QuickBooks to be reconnected; it is sent by itself once you reconnect")
    assert world.record("invoice", invoice["id"]) == waiting
    assert [(r["kind"], r["crm_id"]) for r in world.api("GET", "/records?status=pending")] == [("invoice", invoice["id"])]
    assert world.api("GET", "/status")["counts"] == {"pending": 1}

    world.connect()
    world.work()
    assert [Decimal(str(i["TotalAmt"])) for i in world.qbo_all("Invoice")] == [Decimal("80.00")]
    assert world.record("invoice", invoice["id"]) == ("synced", None)


def _qbo_invoice(world: World, customer: str, amount: str) -> str:
    line = {"DetailType": "SalesItemLineDetail", "Amount": amount,
            "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "Qty": 1, "UnitPrice": amount}}
    return str(world.qbo("POST", "invoice", {"CustomerRef": {"value": customer}, "Line": [line]})["Invoice"]["Id"])


def test_local_changes_to_imported_invoices_are_marked_changed_in_the_crm_only(world):
    customer = str(world.qbo("POST", "customer", {"DisplayName": "Cy Owner",
                                                  "PrimaryEmailAddr": {"Address": "cy@example.com"}})["Customer"]["Id"])
    edited_qbo, deleted_qbo, paid_qbo = (_qbo_invoice(world, customer, a) for a in ("100.00", "50.00", "70.00"))
    world.connect(import_invoices="on")
    world.work()
    by_total = {i["total"]: i["id"] for i in world.crm("GET", "/invoices") if i["origin"] == "qbo"}
    edited, deleted, paid = by_total["100.00"], by_total["50.00"], by_total["70.00"]

    world.crm("PATCH", f"/invoices/{edited}", {"lines": [{"name": "Services", "quantity": "1", "unit_price": "120.00"}]})
    world.crm("DELETE", f"/invoices/{deleted}")
    world.crm("POST", "/payments", {"source": "invoice", "invoice_id": paid, "amount": "20.00"})
    world.work()

    assert world.record("invoice", edited) == ("crm_only", "changed in the CRM only: QuickBooks owns this invoice, so "
                                                           "the CRM's edit was not sent and QuickBooks keeps its own version")
    assert world.record("invoice", deleted) == ("crm_only", "deleted in the CRM only: QuickBooks owns this invoice "
                                                            "and still has it")
    assert world.record("invoice", paid)[0] == "synced"  # its payment went to QuickBooks; nothing drifted
    totals = {str(i["Id"]): (Decimal(str(i["TotalAmt"])), Decimal(str(i["Balance"]))) for i in world.qbo_all("Invoice")}
    assert totals == {edited_qbo: (Decimal("100.00"), Decimal("100.00")), deleted_qbo: (Decimal("50.00"), Decimal("50.00")),
                      paid_qbo: (Decimal("70.00"), Decimal("50.00"))}
    assert sorted(r["crm_id"] for r in world.api("GET", "/records?status=crm_only")) == sorted([edited, deleted])
    page = world.client.get(f"/invoices/{edited}").get_data(as_text=True)
    assert 'id="crm-only"' in page and "Changed in the CRM only" in page
    assert 'id="crm-only"' not in world.client.get(f"/invoices/{paid}").get_data(as_text=True)

    with world.app.app_context():
        result = reconcile(get_state(world.app), world.tenant).result
    assert result.differences == []
    assert sorted((d.problem, d.crm_id, d.qbo_id, d.crm_value) for d in result.known) == sorted(
        [("local_change", edited, edited_qbo, "edited"), ("local_change", deleted, deleted_qbo, "deleted")])
    printed = CliRunner().invoke(plugin_cli, ["reconcile", world.tenant], obj=ScriptInfo(create_app=lambda: world.app))
    assert printed.exit_code == 0, printed.output
    assert "known local changes (2; QuickBooks owns these invoices, so CRM edits stay in the CRM):" in printed.output
    assert printed.output.endswith("the books match, apart from 2 known local change(s)\n")
    assert (f"  - invoice CRM {deleted} / QuickBooks {deleted_qbo}: deleted in the CRM only: QuickBooks owns this invoice "
            "and still has it") in printed.output


def test_a_payment_taken_in_quickbooks_while_disconnected_reaches_the_crm_after_reconnecting(world):
    world.connect()
    contact = world.crm("POST", "/contacts", {"first_name": "Di", "email": "di@example.com"})
    invoice = world.sent_invoice(contact["id"])
    world.work()
    qbo_id = world.api("GET", f"/records/invoice/{invoice['id']}")["qbo_id"]
    world.disconnect()
    current = world.qbo("GET", f"invoice/{qbo_id}")["Invoice"]
    world.qbo("POST", "payment", {"CustomerRef": current["CustomerRef"], "TotalAmt": "30.00", "Line": [
        {"Amount": "30.00", "LinkedTxn": [{"TxnId": qbo_id, "TxnType": "Invoice"}]}]})
    world.connect()  # its webhook reached no one; reconnecting reads what changed meanwhile
    world.work()
    crm = world.crm("GET", f"/invoices/{invoice['id']}")
    assert (crm["status"], crm["amount_paid"]) == ("partially_paid", "30.00")


def test_a_quickbooks_change_recorded_but_not_applied_before_a_disconnect_reaches_the_crm_after_reconnecting(world):
    """A poll recorded the change, then the location disconnected before it was applied: the drain
    dead-letters it ("no location is connected"), and the poll after reconnecting reads it again
    under the same key, which the inbox takes as seen. Reconnecting revives such notices."""
    from crm_qbo_plugin.inbound.cdc import Change
    from crm_qbo_plugin.inbound.drain import drain_realm
    from crm_qbo_plugin.qbo.timestamps import parse_timestamp
    from crm_qbo_plugin.store import inbox

    world.connect()
    contact = world.crm("POST", "/contacts", {"first_name": "Ed", "email": "ed@example.com", "phone": "555-0100"})
    world.sent_invoice(contact["id"])  # billable: the contact becomes a QuickBooks customer
    world.work()
    qbo_id = world.api("GET", f"/records/contact/{contact['id']}")["qbo_id"]
    current = world.qbo("GET", f"customer/{qbo_id}")["Customer"]
    changed = world.qbo("POST", "customer", {"Id": qbo_id, "SyncToken": current["SyncToken"], "sparse": True,
                                             "PrimaryPhone": {"FreeFormNumber": "555-0199"}})["Customer"]
    state = get_state(world.app)
    change = Change("Customer", changed, parse_timestamp(changed["MetaData"]["LastUpdatedTime"]))
    # what a poll records before applying (a 429 stopped it here)
    inbox.record_polled(state.engine, [change.notice(world.realm)], "cdc", world.realm, world.tenant)
    world.disconnect()
    with world.app.app_context():
        drain_realm(state, world.realm)  # nobody holds the realm now
    assert inbox.pending_ids(state.engine, world.realm) == []

    world.connect()
    world.work()
    assert world.crm("GET", f"/contacts/{contact['id']}")["phone"] == "555-0199"
    assert world.record("contact", contact["id"]) == ("synced", None)


def test_a_change_held_while_a_push_of_its_record_is_in_flight_is_held_after_that_push(world, monkeypatch):
    from crm_qbo_plugin.outbound import held
    from crm_qbo_plugin.outbound.processor import process
    from crm_qbo_plugin.store.db import session
    from crm_qbo_plugin.store.tables import OutboxEvent

    monkeypatch.setattr(held, "LOCK_WAIT_SECONDS", 0.2, raising=False)
    world.connect()
    contact = world.crm("POST", "/contacts", {"first_name": "Ed", "email": "ed@example.com"})
    world.work()
    world.disconnect()
    invoice = world.sent_invoice(contact["id"])
    state = get_state(world.app)
    with session(state.engine) as db:
        row = db.exec(select(OutboxEvent).where(OutboxEvent.subject_id == invoice["id"])).one()
    in_flight = state.redis.lock(f"crm-qbo:push:{world.tenant}:invoice:{invoice['id']}", timeout=60)
    assert in_flight.acquire(blocking=False)  # a push that began before the disconnect
    assert process(state, row.id) == "retry"
    world.api("GET", f"/records/invoice/{invoice['id']}", expect=404)  # nothing marked under the push
    in_flight.release()
    assert process(state, row.id) == "skipped"
    assert world.record("invoice", invoice["id"])[0] == "not_synced"
