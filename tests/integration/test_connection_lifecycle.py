"""Connecting a location to QuickBooks through the sandbox's real OAuth flow: state checks,
encrypted tokens, company facts, reconnect and switch, needs-reconnect, unlink."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
import requests
import sqlalchemy as sa
from sqlmodel import select

from crm_qbo_plugin import EventType, HostEvent, HostUser, QuickBooksPlugin
from crm_qbo_plugin.outbound.processor import process
from crm_qbo_plugin.runtime.clients import client_for
from crm_qbo_plugin.state import get_state
from crm_qbo_plugin.store.db import session
from crm_qbo_plugin.store.tables import Connection, Cursor, Link, OAuthState, OutboxEvent
from crm_qbo_plugin.store.token_store import DbTokenStore
from tests.support.plugin_app import create_app
from tests.support.sandbox_qbo import (
    CLIENT_ID,
    CLIENT_SECRET,
    approve,
    create_company,
    plugin_overrides,
    register_app,
)

CARD = "/integrations/quickbooks/"
ALICE = HostUser(id="u-alice", tenant="loc-1", name="Alice")
BOB = HostUser(id="u-bob", tenant="loc-2", name="Bob")


@pytest.fixture
def qbo_app(plugin_config, fake_host, sandbox_url):
    register_app(sandbox_url)
    app = create_app({**plugin_config, **plugin_overrides(sandbox_url), "SECRET_KEY": "test-session-key"}, fake_host)
    app.config["SANDBOX_URL"] = sandbox_url
    yield app
    state = get_state(app)
    state.engine.dispose()
    state.redis.close()


def start_connect(app, host, user, client=None, **form):
    host.user = user
    client = client or app.test_client()
    assert client.get(CARD).status_code == 200
    with client.session_transaction() as sess:
        csrf = sess["crm_qbo_csrf"]
    response = client.post(CARD + "connect", data={"csrf_token": csrf, **form})
    assert response.status_code == 303, response.data
    return client, response.headers["Location"]


def connect(app, host, user, realm, client=None, **form):
    client, authorize = start_connect(app, host, user, client, **form)
    params = approve(authorize, realm)
    return client, params, client.get(CARD + "callback", query_string=params)


def connection(app, tenant="loc-1") -> Connection | None:
    with session(get_state(app).engine) as db:
        return db.exec(select(Connection).where(Connection.tenant_id == tenant)).first()


def test_connect_stores_company_facts_and_only_encrypted_tokens(qbo_app, fake_host, database_url, redis_url):
    realm = create_company(qbo_app.config["SANDBOX_URL"], name="Acme Books", country="GB", home_currency="GBP")
    client, _params, response = connect(qbo_app, fake_host, ALICE, realm, import_invoices="on")
    assert response.status_code == 303
    card = client.get(CARD)
    assert b"Connected to Acme Books" in card.data and b"Disconnect QuickBooks" in card.data
    row = connection(qbo_app)
    assert row is not None
    assert (row.status, row.realm_id, row.pinned_realm_id) == ("connected", realm, realm)
    assert (row.company_name, row.country, row.home_currency, row.tax_model) == ("Acme Books", "GB", "GBP", "tax_codes")
    assert row.settings["import_invoices"] is True
    tokens = DbTokenStore(get_state(qbo_app).engine, get_state(qbo_app).cipher).load(realm)
    assert tokens is not None
    secrets = [tokens.access_token, tokens.refresh_token]
    # Nothing in the database or in Redis holds a token in plain text.
    if database_url.startswith("sqlite"):
        path = Path(database_url.removeprefix("sqlite:///"))
        blob = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
    else:
        engine = sa.create_engine(database_url)
        with engine.connect() as conn:
            blob = "".join(str(r) for t in ("qbo_connection", "qbo_oauth_state", "qbo_outbox")
                           for r in conn.execute(sa.text(f"SELECT * FROM {t}"))).encode()
        engine.dispose()
    store = redis.Redis.from_url(redis_url)
    dumped = b"".join(k + (store.dump(k) or b"") for k in store.scan_iter())
    for secret in secrets:
        assert secret.encode() not in blob
        assert secret.encode() not in dumped


@pytest.mark.parametrize("case", ["missing", "forged", "reused", "expired", "other session", "other user", "denied"])
def test_bad_state_is_refused_with_nothing_written(qbo_app, fake_host, case):
    realm = create_company(qbo_app.config["SANDBOX_URL"])
    client, authorize = start_connect(qbo_app, fake_host, ALICE)
    params = approve(authorize, realm, decision="deny" if case == "denied" else "allow")
    if case == "missing":
        params.pop("state")
    elif case == "forged":
        params["state"] = "x" * 43
    elif case == "reused":
        assert client.get(CARD + "callback", query_string=params).status_code == 303  # first use connects
        with session(get_state(qbo_app).engine) as db:
            before = db.exec(select(Connection)).one().model_dump()
    elif case == "expired":
        with session(get_state(qbo_app).engine) as db:
            row = db.exec(select(OAuthState)).one()
            row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
            db.add(row)
            db.commit()
    elif case == "other session":
        client = qbo_app.test_client()
    elif case == "other user":
        fake_host.user = HostUser(id="u-eve", tenant="loc-1")
    response = client.get(CARD + "callback", query_string=params)
    assert response.status_code == 400
    expected = "cancelled" if case == "denied" else "invalid_state"
    assert f'data-code="{expected}"'.encode() in response.data
    if case == "reused":
        with session(get_state(qbo_app).engine) as db:
            assert db.exec(select(Connection)).one().model_dump() == before
    else:
        assert connection(qbo_app) is None


def test_a_company_connected_elsewhere_is_refused_without_naming_the_other_location(qbo_app, fake_host):
    realm = create_company(qbo_app.config["SANDBOX_URL"])
    assert connect(qbo_app, fake_host, ALICE, realm)[2].status_code == 303
    _c, _p, response = connect(qbo_app, fake_host, BOB, realm)
    assert response.status_code == 400
    assert b'data-code="company_taken"' in response.data
    assert b"loc-1" not in response.data and b"Alice" not in response.data
    assert connection(qbo_app, "loc-2") is None


def test_reconnecting_keeps_links_and_switching_company_needs_confirmation_then_starts_clean(qbo_app, fake_host):
    first = create_company(qbo_app.config["SANDBOX_URL"], name="First Co")
    second = create_company(qbo_app.config["SANDBOX_URL"], name="Second Co")
    client = connect(qbo_app, fake_host, ALICE, first)[0]
    with session(get_state(qbo_app).engine) as db:
        db.add(Link(tenant_id="loc-1", kind="contact", crm_id="c1", qbo_id="58", origin="crm"))
        db.add(Cursor(tenant_id="loc-1", stream="cdc", value="2026-11-01T00:00:00+00:00"))
        db.add(Link(tenant_id="loc-1", kind="invoice", crm_id="i1", qbo_id="71", origin="crm", status="not_synced",
                    last_error="not synced — changed while QuickBooks was disconnected"))
        db.commit()
    assert client.post(CARD + "unlink", data={"csrf_token": _csrf(client)}).status_code == 303
    assert connect(qbo_app, fake_host, ALICE, first, client=client)[2].status_code == 303  # same company
    assert _counts(qbo_app) == (2, 1)
    _c, _p, refused = connect(qbo_app, fake_host, ALICE, second, client=client)
    assert refused.status_code == 400 and b'data-code="switch_required"' in refused.data
    assert connection(qbo_app).realm_id == first and _counts(qbo_app) == (2, 1)
    _c, _p, switched = connect(qbo_app, fake_host, ALICE, second, client=client, switch_company="confirmed")
    assert switched.status_code == 303
    assert connection(qbo_app).realm_id == second and connection(qbo_app).company_name == "Second Co"
    # A change held while disconnected stays visible (ignored, with why), its old company's id gone.
    with session(get_state(qbo_app).engine) as db:
        held = db.exec(select(Link)).one()
    assert (held.kind, held.crm_id, held.status, held.qbo_id) == ("invoice", "i1", "ignored", None)
    assert held.last_error == ("changed while QuickBooks was disconnected from the previous company; "
                               "not sent to the new one (no retroactive sync)")
    assert _counts(qbo_app) == (1, 0)


def test_a_reconnect_to_the_same_company_polls_instead_of_importing_everything_again(qbo_app, fake_host):
    """Links are kept, so what changed meanwhile comes from one poll; only an import the disconnect cut
    short is taken up again. Another company is imported from scratch."""
    from crm_qbo_plugin.inbound.enqueue import POLL_CDC, RUN_IMPORT
    from crm_qbo_plugin.store.tables import RunStatus, SyncRun

    first = create_company(qbo_app.config["SANDBOX_URL"], name="First Co")
    state = get_state(qbo_app)

    def queued_and_runs() -> tuple[list[str], int]:
        names = [job.func_name for job in state.queue.jobs]
        state.queue.empty()  # as if the jobs ran: a started poll clears its "queued" flag
        for key in state.redis.scan_iter("crm-qbo:inbound:poll-queued:*"):
            state.redis.delete(key)
        with session(state.engine) as db:
            return names, len(db.exec(select(SyncRun).where(SyncRun.kind == "import")).all())

    client = connect(qbo_app, fake_host, ALICE, first)[0]
    assert queued_and_runs() == ([RUN_IMPORT], 1)  # a first connect imports
    with session(state.engine) as db:
        run = db.exec(select(SyncRun)).one()
        run.status, run.finished_at = RunStatus.SUCCEEDED.value, datetime.now(UTC)
        db.add(run)
        db.commit()
    client.post(CARD + "unlink", data={"csrf_token": _csrf(client)})
    connect(qbo_app, fake_host, ALICE, first, client=client)
    assert queued_and_runs() == ([POLL_CDC], 1)  # back on the same company: a poll, no new import
    with session(state.engine) as db:
        run = db.exec(select(SyncRun)).one()
        run.status, run.finished_at = RunStatus.RUNNING.value, None  # as if the disconnect cut it short
        db.add(run)
        db.commit()
    client.post(CARD + "unlink", data={"csrf_token": _csrf(client)})
    connect(qbo_app, fake_host, ALICE, first, client=client)
    assert queued_and_runs() == ([RUN_IMPORT, POLL_CDC], 1)  # the open run is resumed, not restarted


def _csrf(client) -> str:
    with client.session_transaction() as sess:
        return str(sess["crm_qbo_csrf"])


def _counts(app) -> tuple[int, int]:
    with session(get_state(app).engine) as db:
        return len(db.exec(select(Link)).all()), len(db.exec(select(Cursor)).all())


def test_unlink_revokes_at_intuit_and_returns_the_card_to_connect(qbo_app, fake_host):
    base = qbo_app.config["SANDBOX_URL"]
    realm = create_company(base)
    client = connect(qbo_app, fake_host, ALICE, realm)[0]
    state = get_state(qbo_app)
    refresh = DbTokenStore(state.engine, state.cipher).load(realm).refresh_token
    response = client.post(CARD + "unlink", data={"csrf_token": _csrf(client)})
    assert response.status_code == 303
    row = connection(qbo_app)
    assert (row.status, row.realm_id, row.access_token_enc, row.refresh_token_enc) == ("disconnected", None, None, None)
    assert b"Connect to QuickBooks" in client.get(CARD).data
    answer = requests.post(f"{base}/oauth2/v1/tokens/bearer", data={"grant_type": "refresh_token", "refresh_token": refresh},
                           auth=(CLIENT_ID, CLIENT_SECRET), timeout=10)
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"
    with qbo_app.app_context():
        QuickBooksPlugin().publish("loc-1", HostEvent(type=EventType.CONTACT_CREATED, subject_id="c1", key="after"))
    with session(state.engine) as db:
        outbox_id = db.exec(select(OutboxEvent)).one().id
    assert process(state, outbox_id) == "skipped"


def test_unlink_needs_the_card_form(qbo_app, fake_host):
    realm = create_company(qbo_app.config["SANDBOX_URL"])
    client = connect(qbo_app, fake_host, ALICE, realm)[0]
    assert client.post(CARD + "unlink", data={"csrf_token": "forged"}).status_code == 400
    assert connection(qbo_app).status == "connected"
    fake_host.user = None
    assert client.post(CARD + "unlink", data={"csrf_token": _csrf(client)}).status_code == 401


def test_invalid_grant_parks_the_tenant_until_it_reconnects(qbo_app, fake_host):
    base = qbo_app.config["SANDBOX_URL"]
    mine, theirs = create_company(base), create_company(base)
    client = connect(qbo_app, fake_host, ALICE, mine)[0]
    connect(qbo_app, fake_host, BOB, theirs)
    state = get_state(qbo_app)
    pushed: list[str] = []

    def read_company(state_, row, conn):
        with client_for(state_, conn.realm_id) as qbo:
            pushed.append(qbo.company_info()["CompanyName"])

    state.handlers["quickbooks"]["contact.updated"] = read_company
    # The user disconnects the app at Intuit: our refresh token is revoked; an hour passes.
    refresh = DbTokenStore(state.engine, state.cipher).load(mine).refresh_token
    requests.post(f"{base}/v2/oauth2/tokens/revoke", json={"token": refresh}, auth=(CLIENT_ID, CLIENT_SECRET), timeout=10)
    requests.post(f"{base}/_sandbox/clock", json={"advance_seconds": 3700}, timeout=10)
    with qbo_app.app_context():
        for tenant in ("loc-1", "loc-2"):
            QuickBooksPlugin().publish(tenant, HostEvent(type=EventType.CONTACT_UPDATED, subject_id="c1", key="k1"))
    with session(state.engine) as db:
        rows = {r.tenant_id: r.id for r in db.exec(select(OutboxEvent))}
    assert process(state, rows["loc-1"]) == "parked"
    assert process(state, rows["loc-2"]) == "done"  # other tenants carry on
    assert connection(qbo_app).status == "needs_reconnect"
    fake_host.user = ALICE
    card = client.get(CARD)
    assert b"Needs reconnecting" in card.data and b"Reconnect to QuickBooks" in card.data
    with session(state.engine) as db:
        parked = db.get(OutboxEvent, rows["loc-1"])
        assert (parked.status, parked.attempts) == ("pending", 1)
    assert connect(qbo_app, fake_host, ALICE, mine, client=client)[2].status_code == 303
    assert connection(qbo_app).status == "connected"
    assert process(state, rows["loc-1"]) == "done"
    assert len(pushed) == 2


def test_twenty_five_concurrent_jobs_with_an_expired_token_refresh_once(qbo_app, fake_host):
    base = qbo_app.config["SANDBOX_URL"]
    realm = create_company(base)
    connect(qbo_app, fake_host, ALICE, realm)
    state = get_state(qbo_app)
    requests.post(f"{base}/_sandbox/clock", json={"advance_seconds": 3700}, timeout=10)
    before = requests.get(f"{base}/_sandbox/stats", timeout=10).json()["token_endpoint_calls"]
    barrier, errors, names = threading.Barrier(25), [], []

    def job() -> None:
        try:
            with client_for(state, realm) as qbo:
                barrier.wait()
                names.append(qbo.company_info()["CompanyName"])
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=job) for _ in range(25)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == [] and len(names) == 25
    after = requests.get(f"{base}/_sandbox/stats", timeout=10).json()["token_endpoint_calls"]
    assert after - before == 1
    # The stored refresh token is the newest one: it refreshes, the one before it does not.
    stored = DbTokenStore(state.engine, state.cipher).load(realm)
    answer = requests.post(f"{base}/oauth2/v1/tokens/bearer", data={"grant_type": "refresh_token", "refresh_token": stored.refresh_token},
                           auth=(CLIENT_ID, CLIENT_SECRET), timeout=10)
    assert answer.status_code == 200


def test_the_keepalive_refreshes_connections_before_their_refresh_token_ages_out(qbo_app, fake_host):
    from crm_qbo_plugin.onboarding.keepalive import refresh_idle_connections

    base = qbo_app.config["SANDBOX_URL"]
    realm = create_company(base)
    connect(qbo_app, fake_host, ALICE, realm)
    state = get_state(qbo_app)
    before = DbTokenStore(state.engine, state.cipher).load(realm)
    assert refresh_idle_connections(state) == 0  # a fresh connection is left alone
    later = datetime.now(UTC) + timedelta(days=40)
    assert refresh_idle_connections(state, now=later) == 1
    after = DbTokenStore(state.engine, state.cipher).load(realm)
    assert after.refresh_token != before.refresh_token and after.access_token != before.access_token
    answer = requests.post(f"{base}/oauth2/v1/tokens/bearer", data={"grant_type": "refresh_token", "refresh_token": before.refresh_token},
                           auth=(CLIENT_ID, CLIENT_SECRET), timeout=10)
    assert answer.json()["error"] == "invalid_grant"  # the old one is superseded; we kept the new one


def test_a_wrong_secret_key_fails_closed_with_a_clear_message(qbo_app, fake_host, plugin_config):
    from cryptography.fernet import Fernet

    from crm_qbo_plugin.crypto import TokenCipher, TokenDecryptionError

    realm = create_company(qbo_app.config["SANDBOX_URL"])
    connect(qbo_app, fake_host, ALICE, realm)
    state = get_state(qbo_app)
    wrong = DbTokenStore(state.engine, TokenCipher([Fernet.generate_key().decode()]))
    with pytest.raises(TokenDecryptionError, match="restore the old key") as info:
        wrong.load(realm)
    assert "gAAAA" not in str(info.value)


def test_rotate_keys_re_encrypts_every_row_under_the_newest_key(qbo_app, fake_host, plugin_config):
    import os
    import subprocess
    import sys

    from cryptography.fernet import Fernet

    from crm_qbo_plugin.crypto import TokenCipher

    realm = create_company(qbo_app.config["SANDBOX_URL"])
    connect(qbo_app, fake_host, ALICE, realm)
    state = get_state(qbo_app)
    old_key = plugin_config["CRM_QBO_SECRET_KEYS"]
    new_key = Fernet.generate_key().decode()
    tokens = DbTokenStore(state.engine, state.cipher).load(realm)
    env = {**os.environ, **plugin_config, **plugin_overrides(qbo_app.config["SANDBOX_URL"]),
           "CRM_QBO_SECRET_KEYS": f"{new_key},{old_key}", "CRM_QBO_APP": "tests.support.plugin_app:create_app",
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    done = subprocess.run([sys.executable, "-m", "crm_qbo_plugin", "rotate-keys"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "re-encrypted the tokens of 1 connection(s)" in done.stdout
    only_new = DbTokenStore(state.engine, TokenCipher([new_key])).load(realm)
    assert (only_new.access_token, only_new.refresh_token) == (tokens.access_token, tokens.refresh_token)
