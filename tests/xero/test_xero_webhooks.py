"""The webhook intake's Xero half against the local Xero: its intent-to-receive check passes only
with notices.py's rule, and its signed deliveries parse into events."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask, request

from crm_qbo_plugin.xero import Delivery, intent_to_receive_status, parse_delivery
from tests.xero.conftest import Xero
from tests.xero_sandbox.support import CLIENT_ID, control


class Endpoint:
    """A minimal intake: status from ``intent_to_receive_status``, body parsed when authentic."""

    def __init__(self) -> None:
        self.key = ""
        self.deliveries: list[Delivery] = []
        self.app = Flask("xero-intake")
        self.app.add_url_rule("/xero/webhooks", "hook", self.hook, methods=["POST"])

    def hook(self) -> tuple[str, int]:
        raw = request.get_data()
        status = intent_to_receive_status(raw, request.headers.get("x-xero-signature"), self.key)
        if status == 200:
            self.deliveries.append(parse_delivery(raw))
        return "", status


@pytest.fixture
def endpoint(xero: Xero) -> Iterator[tuple[Endpoint, str]]:
    from xero_sandbox.server import serve_in_thread

    hook = Endpoint()
    with serve_in_thread(hook.app) as url:
        app = control(xero.url, "PATCH", f"apps/{CLIENT_ID}", webhook_url=f"{url}/xero/webhooks")
        hook.key = app["webhook_key"]
        yield hook, url


def test_intent_to_receive_passes_and_events_parse(xero: Xero, endpoint):
    hook, _url = endpoint
    check = control(xero.url, "POST", f"apps/{CLIENT_ID}/intent-to-receive")
    assert (check["passed"], check["webhook_status"]) == (True, "OK")
    assert sorted((r["correctly_signed"], r["status"]) for r in check["results"]) == [
        (False, 401), (False, 401), (True, 200), (True, 200)]
    assert [d.is_intent_to_receive for d in hook.deliveries] == [True, True]
    hook.deliveries.clear()

    contact = xero.client.save_contact({"Name": "Hooked"}, request_id="c-1")
    invoice = xero.client.save_invoice({
        "Type": "ACCREC", "Contact": {"ContactID": contact["ContactID"]}, "Status": "AUTHORISED",
        "LineItems": [{"Description": "x", "Quantity": 1, "UnitAmount": 10, "AccountCode": "200"}]},
        request_id="i-1")
    assert control(xero.url, "POST", "webhooks/deliver", force=True)["delivered"] == 1
    [delivery] = hook.deliveries
    assert [(e.category, e.event_type, e.resource_id, e.tenant_id) for e in delivery.events] == [
        ("CONTACT", "CREATE", contact["ContactID"], xero.tenant_id),
        ("INVOICE", "CREATE", invoice["InvoiceID"], xero.tenant_id)]
    assert all(e.event_date.tzinfo is not None for e in delivery.events)
    assert (delivery.first_sequence, delivery.last_sequence) == (1, 2)


def test_a_wrong_key_fails_the_check(xero: Xero, endpoint):
    hook, _url = endpoint
    hook.key = "not-the-key"
    check = control(xero.url, "POST", f"apps/{CLIENT_ID}/intent-to-receive")
    assert (check["passed"], check["webhook_status"]) == (False, "PENDING")
    assert hook.deliveries == []
