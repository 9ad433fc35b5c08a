"""Security issue 15, the engine's items: undecryptable tokens (5), control characters from hosts
and Intuit (6), refused connects revoking their grant (7), host secrets bound to tenants (8) and
retention of settled rows (12). Each against the real sandbox and, where it matters, PostgreSQL
(run with CRM_QBO_TEST_DATABASE_URL)."""

from __future__ import annotations

import json

import pytest
import requests
from cryptography.fernet import Fernet
from sqlmodel import select

from crm_qbo_plugin import EventType, HostEvent, QuickBooksPlugin, sign_host_event
from crm_qbo_plugin.outbound.held import WAITING_FOR_RECONNECT
from crm_qbo_plugin.outbound.processor import process
from crm_qbo_plugin.runtime.clients import client_for
from crm_qbo_plugin.runtime.status import UNREADABLE
from crm_qbo_plugin.state import get_state
from crm_qbo_plugin.store.db import session
from crm_qbo_plugin.store.tables import InboxNotice, OutboxEvent
from tests.integration.test_connection_lifecycle import ALICE, CARD, _csrf, connect, connection
from tests.support.inbound import inbound_env
from tests.support.plugin_app import HOST_ID, HOST_SECRET, create_app
from tests.support.sandbox_qbo import (
    CLIENT_ID,
    CLIENT_SECRET,
    create_company,
    plugin_overrides,
    register_app,
)
from tests.support.webhook_posts import cloud_event, legacy_body, post_signed

API = CARD + "api"
InboxTable = InboxNotice.__table__  # type: ignore[attr-defined]
EVENTS = "/integrations/quickbooks/events"


@pytest.fixture
def qbo_app(plugin_config, fake_host, sandbox_url):
    """The plugin on the sandbox's real OAuth flow (as in test_connection_lifecycle)."""
    register_app(sandbox_url)
    app = create_app({**plugin_config, **plugin_overrides(sandbox_url), "SECRET_KEY": "test-session-key"}, fake_host)
    app.config["SANDBOX_URL"] = sandbox_url
    yield app
    state = get_state(app)
    state.engine.dispose()
    state.redis.close()


# --- 5. Undecryptable tokens -------------------------------------------------------------------


def _with_a_new_key(qbo_app, plugin_config, fake_host):
    """The same database and host, but CRM_QBO_SECRET_KEYS replaced by a key that never wrote the
    stored tokens (the old key dropped too early)."""
    config = {**plugin_config, **plugin_overrides(qbo_app.config["SANDBOX_URL"]), "SECRET_KEY": "test-session-key",
              "CRM_QBO_SECRET_KEYS": Fernet.generate_key().decode()}
    return create_app(config, fake_host)


def _read_company(state, row, conn) -> None:
    """A push handler that needs the tenant's tokens (what every real handler does first)."""
    with client_for(state, conn.realm_id) as qbo:
        qbo.company_info()


def test_undecryptable_tokens_park_the_work_and_the_card_asks_to_reconnect(qbo_app, fake_host, plugin_config):
    realm = create_company(qbo_app.config["SANDBOX_URL"])
    connect(qbo_app, fake_host, ALICE, realm)
    app = _with_a_new_key(qbo_app, plugin_config, fake_host)
    state = get_state(app)
    state.handlers["quickbooks"]["contact.updated"] = _read_company
    with app.app_context():
        QuickBooksPlugin().publish("loc-1", HostEvent(type=EventType.CONTACT_UPDATED, subject_id="c1", key="k1"))
    with session(state.engine) as db:
        outbox_id = db.exec(select(OutboxEvent)).one().id
    assert process(state, outbox_id) == "parked"  # not failed, not retried: waiting for a person
    with session(state.engine) as db:
        parked = db.get(OutboxEvent, outbox_id)
        assert (parked.status, parked.attempts, parked.last_error) == (
            "pending", 1, WAITING_FOR_RECONNECT)
    row = connection(app)
    assert (row.status, row.last_error) == ("needs_reconnect", UNREADABLE)

    fake_host.user = ALICE
    client = app.test_client()
    status = client.get(API + "/status")
    assert status.status_code == 200
    assert (status.json["status"], status.json["last_error"]) == ("needs_reconnect", UNREADABLE)
    assert client.get(API + "/accounts").status_code == 409
    assert client.get(API + "/tax-codes").status_code == 409
    card = client.get(CARD)
    assert b'data-reason="unreadable"' in card.data and b"cannot be read" in card.data
    assert b"Reconnect to QuickBooks" in card.data and b"unlink-parked" in card.data
    # Back on the key that wrote the tokens, the card finds them readable and resumes the connection.
    assert qbo_app.test_client().get(API + "/status").json["status"] == "connected"
    assert (connection(qbo_app).status, connection(qbo_app).last_error) == ("connected", None)
    state.engine.dispose()
    state.redis.close()


def test_with_undecryptable_tokens_status_is_not_connected_and_disconnect_drops_them(qbo_app, fake_host, plugin_config):
    base = qbo_app.config["SANDBOX_URL"]
    realm = create_company(base)
    connect(qbo_app, fake_host, ALICE, realm)
    app = _with_a_new_key(qbo_app, plugin_config, fake_host)
    client = app.test_client()
    fake_host.user = ALICE
    # Nothing has touched the tokens yet: the status itself finds out they cannot be read.
    status = client.get(API + "/status").json
    assert (status["status"], status["last_error"]) == ("needs_reconnect", UNREADABLE)
    client.get(CARD)
    answer = client.post(CARD + "unlink", data={"csrf_token": _csrf(client)})
    assert answer.status_code == 303
    row = connection(app)
    assert (row.status, row.realm_id, row.access_token_enc, row.refresh_token_enc, row.last_error) == (
        "disconnected", None, None, None, None)
    assert b"Connect to QuickBooks" in client.get(CARD).data
    assert client.get(API + "/status").json["status"] == "disconnected"
    state = get_state(app)
    state.engine.dispose()
    state.redis.close()


def test_restoring_the_key_resumes_a_connection_parked_as_unreadable(qbo_app, fake_host, plugin_config):
    from crm_qbo_plugin.onboarding.keepalive import refresh_idle_connections

    realm = create_company(qbo_app.config["SANDBOX_URL"])
    connect(qbo_app, fake_host, ALICE, realm)
    wrong = _with_a_new_key(qbo_app, plugin_config, fake_host)
    get_state(wrong).handlers["quickbooks"]["contact.updated"] = _read_company
    with wrong.app_context():
        QuickBooksPlugin().publish("loc-1", HostEvent(type=EventType.CONTACT_UPDATED, subject_id="c1", key="k1"))
    with session(get_state(wrong).engine) as db:
        outbox_id = db.exec(select(OutboxEvent)).one().id
    assert process(get_state(wrong), outbox_id) == "parked"
    assert connection(qbo_app).status == "needs_reconnect"
    # The operator puts the old key back (after the new one): the scheduler's keep-alive pass
    # resumes the connection, and the parked row goes out, without anyone reconnecting.
    old_key = plugin_config["CRM_QBO_SECRET_KEYS"]
    restored = create_app({**plugin_config, **plugin_overrides(qbo_app.config["SANDBOX_URL"]),
                           "CRM_QBO_SECRET_KEYS": f"{Fernet.generate_key().decode()},{old_key}"}, fake_host)
    state = get_state(restored)
    state.handlers["quickbooks"]["contact.updated"] = _read_company
    assert refresh_idle_connections(state) == 0
    assert (connection(restored).status, connection(restored).last_error) == ("connected", None)
    assert process(state, outbox_id) == "done"
    for app in (wrong, restored):
        get_state(app).engine.dispose()
        get_state(app).redis.close()


def test_undecryptable_tokens_stop_the_inbound_drain_and_poll_with_the_notices_kept(cloud_env, plugin_config):
    from crm_qbo_plugin.inbound.cdc import poll
    from crm_qbo_plugin.inbound.drain import drain_realm

    env = cloud_env
    assert post_signed(env, [cloud_event(env.realm, "customer", "1", "updated", "e-1")]).status_code == 200
    wrong = create_app({**plugin_config, **plugin_overrides(env.sandbox_url),
                        "CRM_QBO_SECRET_KEYS": Fernet.generate_key().decode()}, env.host)
    state = get_state(wrong)
    with wrong.app_context():
        assert drain_realm(state, env.realm).stopped == "needs reconnect"
        assert poll(state, "loc-1") is None  # parked: nothing polled until someone reconnects
    assert [n["status"] for n in env.inbox()] == ["pending"]  # kept for after the reconnect
    assert (connection(wrong).status, connection(wrong).last_error) == ("needs_reconnect", UNREADABLE)
    state.engine.dispose()
    state.redis.close()


# --- 6. Control characters ---------------------------------------------------------------------


GOOD_EVENT = {"tenant": "loc-1", "type": "contact.created", "subject_id": "c-1", "key": "audit-1",
              "occurred_at": "2026-11-21T10:00:00+00:00"}


def _post_event(client, payload: dict, host: str = HOST_ID, secret: str = HOST_SECRET):
    body = json.dumps(payload).encode()
    return client.post(EVENTS, data=body, headers={"Content-Type": "application/json", "X-CRM-Host": host,
                                                   "X-CRM-Signature": sign_host_event(body, secret)})


def _outbox(app) -> list[OutboxEvent]:
    with session(get_state(app).engine) as db:
        return list(db.exec(select(OutboxEvent)))


@pytest.mark.parametrize("field", ["tenant", "subject_id", "key"])
@pytest.mark.parametrize("char", ["\u0000", "\u001b", "\u0085"])
def test_host_events_with_control_characters_get_400_naming_the_field(plugin_app, field, char):
    response = _post_event(plugin_app.test_client(), {**GOOD_EVENT, field: "a" + char + "b"})
    assert response.status_code == 400
    assert response.json["fields"] == {field: ["must not contain control characters"]}
    assert _outbox(plugin_app) == []


def test_publish_refuses_control_characters_too(plugin_app):
    from crm_qbo_plugin.events import EventError

    with plugin_app.app_context(), pytest.raises(EventError, match="tenant: must not contain control characters"):
        QuickBooksPlugin().publish("loc\u00001", HostEvent(type=EventType.CONTACT_CREATED, subject_id="c1", key="k"))
    with pytest.raises(EventError, match="key: must not contain control characters"):
        HostEvent(type=EventType.CONTACT_CREATED, subject_id="c1", key="k\u0000")
    assert _outbox(plugin_app) == []


@pytest.fixture
def cloud_env(plugin_config, sandbox_url):
    with inbound_env(plugin_config, sandbox_url, webhooks=False, webhook_format="cloudevents") as env:
        yield env


def test_webhook_notices_with_control_characters_are_dead_letters_not_503s(cloud_env):
    env = cloud_env
    batch = [
        cloud_event(env.realm, "customer", "7", "updated", "e-\u0000-1"),
        cloud_event(env.realm, "customer", "8", "merged", "e-2", deletedid="9\u00000"),
        cloud_event(env.realm, "customer", "9", "updated", "e-3"),
    ]
    answer = post_signed(env, batch)
    assert answer.status_code == 200 and answer.json() == {"recorded": 3, "duplicates": 0, "dead": 2}
    assert post_signed(env, batch).json() == {"recorded": 0, "duplicates": 3, "dead": 0}  # keyed stably
    legacy = legacy_body(env.realm, [("Cust\u0000omer", "5", "Update", "2025-09-08T20:52:31.657Z")])
    assert post_signed(env, legacy).json() == {"recorded": 1, "duplicates": 0, "dead": 1}
    got = sorted((n["entity"], n["entity_id"], n["status"], n["reason"]) for n in env.inbox())
    assert got == [
        ("?", "?", "dead", "CloudEvent id contains control characters"),
        ("?", "?", "dead", "CloudEvent with an invalid deletedid"),
        ("?", "?", "dead", "entity name contains control characters"),
        ("Customer", "9", "pending", None),
    ]
    assert all("\u0000" not in json.dumps(n["data"]) for n in env.inbox())


# --- 7. Refused connects revoke their grant ----------------------------------------------------


def test_a_connect_refused_after_the_code_exchange_revokes_the_new_grant(qbo_app, fake_host):
    base = qbo_app.config["SANDBOX_URL"]
    realm = create_company(base)
    state = get_state(qbo_app)
    granted = []
    exchange = state.token_endpoint.exchange_code

    def remember(code, redirect_uri):  # the real exchange; the test keeps what Intuit granted
        tokens = exchange(code, redirect_uri)
        granted.append(tokens)
        return tokens

    state.token_endpoint.exchange_code = remember  # type: ignore[method-assign]
    fault = requests.post(f"{base}/_sandbox/faults", json={"path": "companyinfo", "status": 403, "code": 100}, timeout=10)
    assert fault.status_code == 201
    _client, _params, response = connect(qbo_app, fake_host, ALICE, realm)
    assert response.status_code == 400 and b'data-code="company_unreadable"' in response.data
    assert connection(qbo_app) is None
    [tokens] = granted
    answer = requests.post(f"{base}/oauth2/v1/tokens/bearer",
                           data={"grant_type": "refresh_token", "refresh_token": tokens.refresh_token},
                           auth=(CLIENT_ID, CLIENT_SECRET), timeout=10)
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"


# --- 8. Host secrets are bound to tenants ------------------------------------------------------


def test_a_host_secret_speaks_only_for_tenants_the_crm_knows_and_it_is_bound_to(plugin_config):
    from reference_crm.app import create_app as create_crm
    from tests.support.reference_crm_app import close, crm_config, new_location, outbox

    crm = create_crm(crm_config(plugin_config))
    alpha, beta = new_location(crm.test_client(), "Alpha")["id"], new_location(crm.test_client(), "Beta")["id"]
    shard_secret = "shard-a-secret-0123456789"
    bound = create_crm(crm_config(plugin_config, CRM_QBO_HOST_SECRETS=f"{HOST_ID}={HOST_SECRET},shard-a:{alpha}={shard_secret}"))
    try:
        client = bound.test_client()
        before = outbox(bound)
        for host, secret, tenant in [(HOST_ID, HOST_SECRET, "no-such-location"),  # unknown to the CRM
                                     ("shard-a", shard_secret, beta),  # known, but not shard-a's
                                     ("shard-a", shard_secret, "no-such-location")]:
            refused = _post_event(client, {**GOOD_EVENT, "tenant": tenant, "key": f"{host}-{tenant}"}, host, secret)
            assert refused.status_code == 403
            assert refused.json == {"error": "the host named in X-CRM-Host may not post events for this tenant"}
        assert outbox(bound) == before
        assert _post_event(client, {**GOOD_EVENT, "tenant": alpha, "key": "a1"}, "shard-a", shard_secret).status_code == 202
        assert _post_event(client, {**GOOD_EVENT, "tenant": beta, "key": "b1"}).status_code == 202  # unbound host
        assert outbox(bound) == [*before, (alpha, "contact.created", "a1", "crm", None),
                                 (beta, "contact.created", "b1", "crm", None)]
    finally:
        close(bound)
        close(crm)


@pytest.mark.parametrize(("value", "message"), [
    ("crm:=0123456789abcdef", "host 'crm': host_id:tenant1|tenant2=secret needs tenant ids"),
    ("crm:loc 1=0123456789abcdef", "host 'crm': host_id:tenant1|tenant2=secret needs tenant ids"),
    ("crm:a||b=0123456789abcdef", "host 'crm': host_id:tenant1|tenant2=secret needs tenant ids"),
    ("crm=0123456789abcdef,crm:a=0123456789abcdef", "host 'crm' is given twice"),
])
def test_malformed_host_bindings_stop_start_up(value, message):
    from crm_qbo_plugin.settings import SettingsError, load_settings
    from tests.support.plugin_app import plugin_settings

    with pytest.raises(SettingsError, match="CRM_QBO_HOST_SECRETS: " + message.replace("|", r"\|")):
        load_settings(plugin_settings("sqlite:///x.db", "redis://127.0.0.1:6379/0", CRM_QBO_HOST_SECRETS=value), environ={})


# --- 12. Retention -----------------------------------------------------------------------------


def test_the_scheduler_prunes_settled_rows_past_the_retention_and_keeps_what_exactly_once_needs(plugin_config, fake_host):
    from datetime import UTC, datetime, timedelta

    from crm_qbo_plugin.jobs.scheduler import plugin_jobs
    from crm_qbo_plugin.store.tables import OAuthState, SyncRun

    app = create_app({**plugin_config, "CRM_QBO_RETENTION_DAYS": "7"}, fake_host)
    state = get_state(app)
    now = datetime.now(UTC)
    old, recent = now - timedelta(days=8), now - timedelta(days=6)

    def notice(stamp, status, when):
        return InboxNotice(realm_id="1", tenant_id="loc-1", entity="Customer", entity_id="5", operation="Update",
                           change_stamp=stamp, status=status, created_at=when, updated_at=when)

    def event(key, status, when, subject="c1"):
        return OutboxEvent(tenant_id="loc-1", event_key=key, event_type="contact.updated", subject_id=subject,
                           origin="crm", status=status, request_id=key, occurred_at=when, created_at=when, updated_at=when)

    def oauth(name, used, expires):
        return OAuthState(state_hash=name, tenant_id="loc-1", session_hash="s", user_id="u", used_at=used,
                          expires_at=expires, created_at=expires - timedelta(minutes=10))

    def run(kind, status, when):
        return SyncRun(tenant_id="loc-1", kind=kind, status=status, started_at=when,
                       finished_at=None if status == "running" else when)

    rows = [
        notice("applied-old", "applied", old), notice("skipped-old", "skipped", old), notice("dead-old", "dead", old),
        notice("pending-old", "pending", old), notice("applied-recent", "applied", recent),
        event("done-old", "done", old), event("skipped-old", "skipped", old), event("failed-old", "failed", old),
        event("pending-old", "pending", old), event("done-recent", "done", recent),
        event("newest-of-c2", "done", old, subject="c2"),
        oauth("used-old", old, old), oauth("expired-old", None, old), oauth("used-recent", recent, recent),
        oauth("open", None, now + timedelta(minutes=5)),
        run("poll", "succeeded", old - timedelta(hours=1)), run("poll", "failed", old), run("import", "running", old),
        run("poll", "succeeded", recent), run("push", "succeeded", old),
    ]
    with session(state.engine) as db:
        db.add_all(rows)
        db.commit()
    retention = {job.name: job for job in plugin_jobs(get_state(app), app.app_context)}["retention"]
    assert retention.run().as_dict() == {"inbox": 3, "outbox": 2, "oauth_states": 2, "sync_runs": 2}
    with session(state.engine) as db:
        assert sorted(r.change_stamp for r in db.exec(select(InboxNotice))) == ["applied-recent", "pending-old"]
        assert sorted(r.event_key for r in db.exec(select(OutboxEvent))) == [
            "done-recent", "failed-old", "newest-of-c2", "pending-old"]
        assert sorted(r.state_hash for r in db.exec(select(OAuthState))) == ["open", "used-recent"]
        assert sorted((r.kind, r.status) for r in db.exec(select(SyncRun))) == [
            ("import", "running"), ("poll", "succeeded"), ("push", "succeeded")]
    assert retention.run().as_dict() == {"inbox": 0, "outbox": 0, "oauth_states": 0, "sync_runs": 0}
    state.engine.dispose()
    state.redis.close()


@pytest.mark.parametrize("days", ["1", "0", "-5", "x"])
def test_a_retention_shorter_than_intuits_redeliveries_stops_start_up(days):
    from crm_qbo_plugin.settings import SettingsError, load_settings
    from tests.support.plugin_app import plugin_settings

    with pytest.raises(SettingsError, match="CRM_QBO_RETENTION_DAYS: "):
        load_settings(plugin_settings("sqlite:///x.db", "redis://127.0.0.1:6379/0", CRM_QBO_RETENTION_DAYS=days), environ={})


def test_a_redelivery_inside_the_shortest_retention_is_still_a_duplicate(cloud_env):
    """The inbox row that dedupes a notice outlives Intuit's redeliveries (hours): even the shortest
    retention allowed (2 days) leaves a day-old settled notice, so its redelivery is counted, not
    re-applied; past the retention the settled row goes."""
    from datetime import UTC, datetime, timedelta

    from crm_qbo_plugin.store.retention import prune_settled

    env = cloud_env
    body = [cloud_event(env.realm, "salesreceipt", "150", "updated", "e-1")]
    assert post_signed(env, body).json() == {"recorded": 1, "duplicates": 0, "dead": 0}
    env.work()
    [row] = env.inbox()
    assert row["status"] == "skipped"
    with env.state.engine.begin() as conn:
        conn.execute(InboxTable.update().values(updated_at=datetime.now(UTC) - timedelta(days=1)))
    assert prune_settled(env.state.engine, 2).inbox == 0
    assert post_signed(env, body).json() == {"recorded": 0, "duplicates": 1, "dead": 0}
    [row] = env.inbox()
    assert (row["deliveries"], row["updated_at"] > datetime.now(UTC) - timedelta(minutes=5)) == (2, True)
    with env.state.engine.begin() as conn:  # the redelivery kept it fresh; now nothing comes for 3 days
        conn.execute(InboxTable.update().values(updated_at=datetime.now(UTC) - timedelta(days=3)))
    assert prune_settled(env.state.engine, 2).inbox == 1
    assert env.inbox() == []


@pytest.mark.parametrize(("method", "path"), [
    ("get", "/records/contact/a%00b"), ("post", "/records/invoice/a%00b/retry"), ("post", "/records/payment/%1b/ignore")])
def test_record_ids_with_control_characters_are_not_found_without_a_query(plugin_app, fake_host, method, path):
    from crm_qbo_plugin.store.tables import Link

    plugin_app.secret_key = "card-session-key-for-this-test"
    fake_host.user = ALICE
    client = plugin_app.test_client()
    csrf = client.get(API + "/status").headers["X-CSRF-Token"]
    response = getattr(client, method)(API + path, headers={"X-CSRF-Token": csrf})
    assert (response.status_code, response.json) == (404, {"error": "no such record"})
    with session(get_state(plugin_app).engine) as db:
        assert db.exec(select(Link)).all() == []
