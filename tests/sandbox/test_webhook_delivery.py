"""Outbound webhooks: signing, both payload formats, in-order delivery and Intuit's retry schedule.

A tiny receiver app served on a loopback port records every POST; the sandbox side is the
OAuth + webhook blueprints on a minimal Flask app (``test_webhook_e2e.py`` uses ``create_app``).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from flask import Flask, request
from quickbooks.client import QuickBooks

from qbo_sandbox.clock import Clock
from qbo_sandbox.oauth import OAuthServer
from qbo_sandbox.server import serve_in_thread
from qbo_sandbox.webhooks import (
    RETRY_SCHEDULE_SECONDS,
    WebhookDispatcher,
    retry_delay,
    sign,
    verify,
)

REALM_A = "9130350000000001"
REALM_B = "9130350000000002"
COMPANIES = [(REALM_A, "Sandbox Company US 1"), (REALM_B, "Second Company")]
TOKEN = "my-verifier-token"


# ---------------------------------------------------------------- signature test vectors


def test_sign_matches_the_java_sdk_test_vector(samples_dir) -> None:
    body = (samples_dir / "webhook-legacy-signed-test-vector.json").read_bytes()
    expected = "JC2GUwciPmRBwEO7WvrRmKqu9tGOKL8FFallocTFi8Q="
    assert sign(body, "b5771f19b12ddb4bcdb9f08bdc50bc63878a") == expected
    assert verify(body, expected, "b5771f19b12ddb4bcdb9f08bdc50bc63878a")
    assert not verify(body + b" ", expected, "b5771f19b12ddb4bcdb9f08bdc50bc63878a")


def test_sign_matches_the_python_quickbooks_test_vector() -> None:
    expected = "nfPLN16u3vMvv08ghDs+dOkLuirEVDy5wAeG/lmM2OA="
    assert sign(b'{"stuff":"5"}', "verify_me") == expected
    assert verify(b'{"stuff":"5"}', expected, "verify_me")
    assert not verify(b'{"stuff":"5"}', expected, "verify_you")


def test_retry_schedule_is_intuits() -> None:
    assert RETRY_SCHEDULE_SECONDS == (10, 20, 30, 300, 1200, 7200, 14400, 21600)
    expected = [10, 20, 30, 300, 1200, 7200, 14400, 21600] + [21600] * 3  # then every 6 h
    assert [retry_delay(n) for n in range(1, 12)] == expected


# ---------------------------------------------------------------- fixtures


@dataclass
class Receiver:
    """Records POSTs; answers with the queued statuses (then 200), optionally slowly."""

    url: str
    received: list[dict[str, Any]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    delay: float = 0.0

    def bodies(self) -> list[Any]:
        return [json.loads(r["body"]) for r in self.received]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    app = Flask("webhook_receiver")
    state = Receiver(url="")
    lock = threading.Lock()

    @app.post("/hook")
    def hook():
        raw = request.get_data()
        with lock:
            state.received.append({"body": raw.decode(), "headers": dict(request.headers)})
            status = state.statuses.pop(0) if state.statuses else 200
        if state.delay:
            time.sleep(state.delay)
        return "", status

    with serve_in_thread(app) as url:
        state.url = f"{url}/hook"
        yield state


@dataclass
class Env:
    url: str
    clock: Clock
    oauth: OAuthServer
    webhooks: WebhookDispatcher

    def connect(self, client_id: str, webhook_url: str | None, fmt: str = "legacy", *realms: str):
        self.oauth.register_app(
            client_id,
            "secret",
            ["http://localhost/cb"],
            webhook_url=webhook_url,
            verifier_token=TOKEN,
            webhook_format=fmt,
        )
        for realm in realms or (REALM_A,):
            self.oauth.issue_tokens(realm, client_id)

    def deliver(self, force: bool = False) -> dict[str, Any]:
        response = requests.post(
            f"{self.url}/_sandbox/webhooks/deliver", json={"force": force}, timeout=30
        )
        assert response.status_code == 200
        return response.json()

    def log(self) -> dict[str, Any]:
        return requests.get(f"{self.url}/_sandbox/webhooks", timeout=5).json()

    def change(
        self,
        entity: str,
        entity_id: str,
        operation: str = "Create",
        realm: str = REALM_A,
        data: dict[str, Any] | None = None,
    ) -> None:
        self.webhooks.record_change(realm, entity, entity_id, operation, self.clock.now(), data)


@pytest.fixture
def env() -> Iterator[Env]:
    clock = Clock()
    oauth = OAuthServer(clock, lambda: list(COMPANIES))
    webhooks = WebhookDispatcher(clock, oauth, aggregation_seconds=0.3, timeout_seconds=1.0)
    app = Flask("qbo_sandbox_webhook_test")
    app.register_blueprint(oauth.blueprint)
    app.register_blueprint(webhooks.blueprint)
    with serve_in_thread(app) as url:
        yield Env(url, clock, oauth, webhooks)
    webhooks.stop()


def pq_validates(body: str, signature: str, token: str) -> bool:
    """python-quickbooks' own check, called unbound (it only needs the verifier token)."""
    return QuickBooks.validate_webhook_signature(None, body, signature, verifier_token=token)


# ---------------------------------------------------------------- payloads


def test_legacy_delivery_is_one_signed_post(env: Env, receiver: Receiver, samples_dir) -> None:
    env.connect("app1", receiver.url)
    env.change("Customer", "1", "Create")
    env.change("Invoice", "130", "Update")
    assert env.log()["pending"] == 1
    summary = env.deliver()
    assert summary == {"delivered": 1, "failed": 0, "pending": 0}
    assert len(receiver.received) == 1
    hit = receiver.received[0]
    assert hit["headers"]["Content-Type"] == "application/json"
    signature = hit["headers"]["Intuit-Signature"]
    assert signature == sign(hit["body"].encode(), TOKEN)
    assert pq_validates(hit["body"], signature, TOKEN)
    assert not pq_validates(hit["body"], signature, "other-token")

    body = json.loads(hit["body"])
    sample = json.loads((samples_dir / "webhook-legacy-multi-entity.json").read_text())
    assert set(body) == set(sample)
    notification = body["eventNotifications"][0]
    assert len(body["eventNotifications"]) == 1
    assert set(notification) == set(sample["eventNotifications"][0])
    assert notification["realmId"] == REALM_A
    entities = notification["dataChangeEvent"]["entities"]
    assert [(e["name"], e["id"], e["operation"]) for e in entities] == [
        ("Customer", "1", "Create"),
        ("Invoice", "130", "Update"),
    ]
    for entity in entities:
        assert set(entity) == set(sample["eventNotifications"][0]["dataChangeEvent"]["entities"][0])
        parsed = datetime.strptime(entity["lastUpdated"], "%Y-%m-%dT%H:%M:%S.%fZ")
        assert abs(parsed.replace(tzinfo=UTC) - env.clock.now()) < timedelta(seconds=30)
    # Nothing left; a second deliver is a no-op.
    assert env.deliver() == {"delivered": 0, "failed": 0, "pending": 0}
    assert len(receiver.received) == 1


def test_legacy_sends_one_notification_per_realm(env: Env, receiver: Receiver) -> None:
    env.connect("app1", receiver.url, "legacy", REALM_A, REALM_B)
    env.change("Customer", "1", realm=REALM_A)
    env.change("Customer", "7", realm=REALM_B)
    env.change("Customer", "2", "Merge", realm=REALM_A, data={"deletedid": "5"})
    assert env.deliver()["delivered"] == 2
    by_realm = {b["eventNotifications"][0]["realmId"]: b for b in receiver.bodies()}
    assert set(by_realm) == {REALM_A, REALM_B}
    a_entities = by_realm[REALM_A]["eventNotifications"][0]["dataChangeEvent"]["entities"]
    assert [e["id"] for e in a_entities] == ["1", "2"]
    assert a_entities[1]["operation"] == "Merge" and a_entities[1]["deletedId"] == "5"
    for hit in receiver.received:
        assert pq_validates(hit["body"], hit["headers"]["Intuit-Signature"], TOKEN)


def test_cloudevents_delivery_matches_the_samples(
    env: Env, receiver: Receiver, samples_dir
) -> None:
    env.connect("app1", receiver.url, "cloudevents", REALM_A, REALM_B)
    env.change("Account", "1234", "Create")
    env.change("Customer", "123", "Merge", data={"deletedid": "27"})
    env.change("SalesReceipt", "150", "Update", realm=REALM_B)
    env.change("Invoice", "9", "Delete")
    env.change("Payment", "8", "Void")
    env.change("Invoice", "10", "Emailed")
    assert env.deliver() == {"delivered": 1, "failed": 0, "pending": 0}
    assert len(receiver.received) == 1  # CloudEvents may mix realms in one delivery
    hit = receiver.received[0]
    assert pq_validates(hit["body"], hit["headers"]["Intuit-Signature"], TOKEN)
    events = json.loads(hit["body"])
    assert isinstance(events, list) and len(events) == 6

    account_sample = json.loads(
        (samples_dir / "webhook-cloudevents-account-created.json").read_text()
    )[0]
    merged_sample = json.loads(
        (samples_dir / "webhook-cloudevents-customer-merged.json").read_text()
    )[0]
    for event in events:
        assert list(event) == list(account_sample)  # same keys, same order
        assert event["specversion"] == "1.0"
        assert event["datacontenttype"] == "application/json"
        assert event["source"].startswith("intuit.") and len(event["source"]) == len(
            account_sample["source"]
        )
        assert event["time"].endswith("Z")
    assert [e["type"] for e in events] == [
        "qbo.account.created.v1",
        "qbo.customer.merged.v1",
        "qbo.salesreceipt.updated.v1",
        "qbo.invoice.deleted.v1",
        "qbo.payment.voided.v1",
        "qbo.invoice.emailed.v1",
    ]
    assert events[0]["intuitentityid"] == "1234" and events[0]["intuitaccountid"] == REALM_A
    assert events[0]["data"] == {}
    assert events[1]["data"] == merged_sample["data"] == {"deletedid": "27"}
    assert events[1]["id"].endswith("-Customer-123")
    assert events[2]["intuitaccountid"] == REALM_B
    assert len({e["id"] for e in events}) == 6


def test_only_connected_apps_with_a_url_get_changes_after_connecting(
    env: Env, receiver: Receiver
) -> None:
    env.connect("early", receiver.url)
    env.change("Customer", "1")  # before "late" connected
    env.clock.advance(5)
    env.connect("late", receiver.url)
    env.connect("silent", None)  # connected, but no webhook URL
    env.oauth.register_app("unconnected", "s", ["http://localhost/cb"], webhook_url=receiver.url)
    env.change("Customer", "2")
    env.change("Customer", "3", realm=REALM_B)  # nobody connected to B
    assert env.deliver()["delivered"] == 2
    ids = sorted(
        [e["id"] for e in b["eventNotifications"][0]["dataChangeEvent"]["entities"]]
        for b in receiver.bodies()
    )
    assert ids == [["1", "2"], ["2"]]


def test_revoked_app_gets_no_more_notices(env: Env, receiver: Receiver) -> None:
    env.oauth.register_app(
        "app1", "secret", ["http://localhost/cb"], webhook_url=receiver.url, verifier_token=TOKEN
    )
    tokens = env.oauth.issue_tokens(REALM_A, "app1")
    response = requests.post(
        f"{env.url}/v2/oauth2/tokens/revoke",
        json={"token": tokens["refresh_token"]},
        auth=("app1", "secret"),
        timeout=5,
    )
    assert response.status_code == 200
    env.change("Customer", "1")
    assert env.deliver() == {"delivered": 0, "failed": 0, "pending": 0}
    assert receiver.received == []


def test_unknown_operation_is_rejected(env: Env) -> None:
    with pytest.raises(ValueError):
        env.change("Customer", "1", "Upsert")


# ---------------------------------------------------------------- failures and retries


def test_failed_delivery_is_retried_on_schedule_and_holds_later_ones(
    env: Env, receiver: Receiver
) -> None:
    env.connect("app1", receiver.url)
    receiver.statuses = [500]
    env.change("Customer", "1")
    assert env.deliver() == {"delivered": 0, "failed": 1, "pending": 1}

    env.change("Customer", "2")  # queued behind the failed one
    env.clock.advance(5)
    assert env.deliver() == {"delivered": 0, "failed": 0, "pending": 2}
    assert len(receiver.received) == 1  # the second one was held, not sent

    log = env.log()
    assert log["pending"] == 2
    first = log["deliveries"][0]
    assert first["status"] == "retrying" and first["attempts"] == 1
    assert first["last_error"] == "HTTP 500"
    assert log["attempts"][0]["status_code"] == 500 and log["attempts"][0]["ok"] is False
    next_at = datetime.fromisoformat(first["next_attempt_at"])
    attempted = datetime.fromisoformat(log["attempts"][0]["attempted_at"])
    assert timedelta(seconds=9.5) < next_at - attempted < timedelta(seconds=11)

    env.clock.advance(5.5)  # 10 s after the failure: the retry is due
    assert env.deliver() == {"delivered": 2, "failed": 0, "pending": 0}
    ids = [
        b["eventNotifications"][0]["dataChangeEvent"]["entities"][0]["id"]
        for b in receiver.bodies()
    ]
    assert ids == ["1", "1", "2"]  # retried first, then the held one, in order
    # A retry resends the identical bytes and signature.
    assert receiver.received[0]["body"] == receiver.received[1]["body"]
    assert (
        receiver.received[0]["headers"]["Intuit-Signature"]
        == receiver.received[1]["headers"]["Intuit-Signature"]
    )
    log = env.log()
    assert [d["status"] for d in log["deliveries"]] == ["delivered", "delivered"]
    assert [a["ok"] for a in log["attempts"]] == [False, True, True]


def test_full_retry_schedule_on_the_sandbox_clock(env: Env, receiver: Receiver) -> None:
    env.connect("app1", receiver.url)
    receiver.statuses = [503] * 12
    env.change("Customer", "1")
    assert env.deliver()["failed"] == 1
    attempts = 1
    for delay in (*RETRY_SCHEDULE_SECONDS, 21600, 21600):
        env.clock.advance(delay - 2)
        assert env.deliver()["failed"] == 0, f"retried early (delay {delay})"
        assert len(receiver.received) == attempts
        env.clock.advance(2.5)
        assert env.deliver()["failed"] == 1, f"not retried after {delay} s"
        attempts += 1
        assert len(receiver.received) == attempts


def test_force_sends_retries_that_are_not_due(env: Env, receiver: Receiver) -> None:
    env.connect("app1", receiver.url)
    receiver.statuses = [500]
    env.change("Customer", "1")
    env.deliver()
    assert env.deliver() == {"delivered": 0, "failed": 0, "pending": 1}
    assert env.deliver(force=True) == {"delivered": 1, "failed": 0, "pending": 0}


def test_non_200_success_codes_and_timeouts_count_as_failures(env: Env, receiver: Receiver) -> None:
    env.connect("app1", receiver.url)
    receiver.statuses = [202]
    env.change("Customer", "1")
    assert env.deliver()["failed"] == 1
    assert env.log()["attempts"][-1]["error"] == "HTTP 202"
    receiver.delay = 1.5  # longer than this dispatcher's 1 s timeout (Intuit: 3 s)
    assert env.deliver(force=True)["failed"] == 1
    assert env.log()["attempts"][-1]["error"].startswith("timeout")
    receiver.delay = 0
    assert env.deliver(force=True)["delivered"] == 1


def test_connection_errors_are_retried(env: Env) -> None:
    env.connect("app1", "http://127.0.0.1:9/nothing-listens-here")
    env.change("Customer", "1")
    assert env.deliver()["failed"] == 1
    attempt = env.log()["attempts"][0]
    assert attempt["status_code"] is None and attempt["error"].startswith("connection error")


def test_one_failing_app_does_not_block_another(env: Env, receiver: Receiver) -> None:
    env.connect("broken", "http://127.0.0.1:9/down")
    env.connect("healthy", receiver.url)
    env.change("Customer", "1")
    assert env.deliver() == {"delivered": 1, "failed": 1, "pending": 1}
    assert len(receiver.received) == 1


def test_background_thread_delivers_after_aggregation(env: Env, receiver: Receiver) -> None:
    env.connect("app1", receiver.url)
    env.webhooks.start()
    env.change("Customer", "1")
    env.change("Customer", "2")
    deadline = time.monotonic() + 5
    while not receiver.received and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    env.webhooks.stop()
    assert len(receiver.received) == 1  # both changes aggregated into one POST
    entities = receiver.bodies()[0]["eventNotifications"][0]["dataChangeEvent"]["entities"]
    assert [e["id"] for e in entities] == ["1", "2"]


def test_background_thread_runs_due_retries(env: Env, receiver: Receiver) -> None:
    env.connect("app1", receiver.url)
    receiver.statuses = [500]
    env.change("Customer", "1")
    env.deliver()
    env.webhooks.start()
    time.sleep(0.5)
    assert len(receiver.received) == 1  # not due yet
    env.clock.advance(10)
    deadline = time.monotonic() + 5
    while len(receiver.received) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    env.webhooks.stop()
    assert len(receiver.received) == 2
    assert env.webhooks.pending_count() == 0


def test_reset_drops_everything(env: Env, receiver: Receiver) -> None:
    env.connect("app1", receiver.url)
    receiver.statuses = [500]
    env.change("Customer", "1")
    env.deliver()
    env.change("Customer", "2")
    env.webhooks.reset()
    assert env.log() == {"pending": 0, "aggregating_changes": 0, "deliveries": [], "attempts": []}
    assert env.deliver(force=True) == {"delivered": 0, "failed": 0, "pending": 0}
