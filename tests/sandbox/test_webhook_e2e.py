"""Webhooks from the full sandbox (``create_app``): REST writes -> signed POSTs to a receiver."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from flask import Flask, request
from quickbooks.client import QuickBooks

from qbo_sandbox import create_app
from qbo_sandbox.server import serve_in_thread
from qbo_sandbox.webhooks import sign

TOKEN = "e2e-verifier"


@pytest.fixture
def receiver() -> Iterator[dict[str, Any]]:
    """Records POSTs; pops a status from ``statuses`` per request (200 when empty)."""
    app = Flask("e2e_receiver")
    state: dict[str, Any] = {"received": [], "statuses": [], "url": ""}
    lock = threading.Lock()

    @app.post("/hook")
    def hook():
        with lock:
            state["received"].append(
                {"body": request.get_data(as_text=True), "headers": dict(request.headers)}
            )
            status = state["statuses"].pop(0) if state["statuses"] else 200
        return "", status

    with serve_in_thread(app) as url:
        state["url"] = f"{url}/hook"
        yield state


def setup_realm(url: str, hook_url: str, fmt: str = "legacy") -> tuple[str, dict[str, str]]:
    realm = requests.post(f"{url}/_sandbox/companies", json={"name": "Hook Co"}, timeout=10).json()[
        "realmId"
    ]
    app = {
        "client_id": "hook-app",
        "client_secret": "hook-secret",
        "redirect_uris": ["http://localhost/cb"],
        "webhook_url": hook_url,
        "verifier_token": TOKEN,
        "webhook_format": fmt,
    }
    assert requests.post(f"{url}/_sandbox/apps", json=app, timeout=10).status_code == 201
    tokens = requests.post(
        f"{url}/_sandbox/tokens", json={"realm_id": realm, "client_id": "hook-app"}, timeout=10
    ).json()
    headers = {
        "Authorization": f"Bearer {tokens['access_token']}",
        "Accept": "application/json",
        "Content-Type": "application/json",
    }
    return realm, headers


def create_customer(url: str, realm: str, headers: dict[str, str], name: str) -> dict[str, Any]:
    response = requests.post(
        f"{url}/v3/company/{realm}/customer",
        headers=headers,
        json={"DisplayName": name},
        params={"minorversion": "75"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return response.json()["Customer"]


def test_rest_writes_become_one_signed_legacy_notification(sandbox_url: str, receiver) -> None:
    realm, headers = setup_realm(sandbox_url, receiver["url"])
    first = create_customer(sandbox_url, realm, headers, "Ada Lovelace")
    second = create_customer(sandbox_url, realm, headers, "Grace Hopper")
    summary = requests.post(f"{sandbox_url}/_sandbox/webhooks/deliver", timeout=30).json()
    assert summary == {"delivered": 1, "failed": 0, "pending": 0}
    assert len(receiver["received"]) == 1
    hit = receiver["received"][0]
    signature = hit["headers"]["Intuit-Signature"]
    assert signature == sign(hit["body"].encode(), TOKEN)
    assert QuickBooks.validate_webhook_signature(None, hit["body"], signature, verifier_token=TOKEN)
    body = json.loads(hit["body"])
    notification = body["eventNotifications"][0]
    assert notification["realmId"] == realm
    entities = notification["dataChangeEvent"]["entities"]
    assert [(e["name"], e["id"], e["operation"]) for e in entities] == [
        ("Customer", first["Id"], "Create"),
        ("Customer", second["Id"], "Create"),
    ]


def test_cloudevents_from_rest_writes(sandbox_url: str, receiver) -> None:
    realm, headers = setup_realm(sandbox_url, receiver["url"], "cloudevents")
    customer = create_customer(sandbox_url, realm, headers, "Katherine Johnson")
    requests.post(f"{sandbox_url}/_sandbox/webhooks/deliver", timeout=30)
    events = json.loads(receiver["received"][0]["body"])
    assert events[0]["type"] == "qbo.customer.created.v1"
    assert events[0]["intuitentityid"] == customer["Id"]
    assert events[0]["intuitaccountid"] == realm


def test_retry_after_clock_advance(sandbox_url: str, receiver) -> None:
    realm, headers = setup_realm(sandbox_url, receiver["url"])
    receiver["statuses"] = [500]
    create_customer(sandbox_url, realm, headers, "First")
    deliver = f"{sandbox_url}/_sandbox/webhooks/deliver"
    assert requests.post(deliver, timeout=30).json()["failed"] == 1
    create_customer(sandbox_url, realm, headers, "Second")
    assert requests.post(deliver, timeout=30).json() == {"delivered": 0, "failed": 0, "pending": 2}
    requests.post(f"{sandbox_url}/_sandbox/clock", json={"advance_seconds": 10}, timeout=10)
    assert requests.post(deliver, timeout=30).json() == {"delivered": 2, "failed": 0, "pending": 0}
    names = [
        json.loads(r["body"])["eventNotifications"][0]["dataChangeEvent"]["entities"][0]["id"]
        for r in receiver["received"]
    ]
    assert names[0] == names[1] != names[2]  # the failed one again, then the held one
    log = requests.get(f"{sandbox_url}/_sandbox/webhooks", timeout=10).json()
    assert [a["status_code"] for a in log["attempts"]] == [500, 200, 200]


def test_autostarted_dispatcher_delivers_without_being_asked(receiver) -> None:
    app = create_app(webhook_autostart=True)
    sandbox = app.extensions["qbo_sandbox"]
    try:
        with serve_in_thread(app) as url:
            realm, headers = setup_realm(url, receiver["url"])
            create_customer(url, realm, headers, "Background")
            deadline = time.monotonic() + 10
            while not receiver["received"] and time.monotonic() < deadline:
                time.sleep(0.05)
            assert len(receiver["received"]) == 1
    finally:
        sandbox.webhooks.stop()
