"""Operations (issue 16, item 7): counters kept in Redis and served at /metrics for a bearer token,
queue depth read at scrape time, and tenant/realm on every log record of a job.

Everything runs on the shipped stack: the reference CRM with the plugin mounted, a sandbox company
that sends it webhooks, an in-process worker and a real Redis; /metrics is read the way Prometheus
reads it and parsed with prometheus_client's own parser."""

from __future__ import annotations

import logging
from datetime import timedelta
from decimal import Decimal

import pytest
import redis
import requests
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from crm_qbo_plugin import logs
from crm_qbo_plugin.inbound.enqueue import enqueue_poll
from crm_qbo_plugin.onboarding.keepalive import refresh_idle_connections
from crm_qbo_plugin.outbound.processor import process
from crm_qbo_plugin.qbo import LimiterConfig, RedisLimiter
from crm_qbo_plugin.qbo.notices import APPLIED_ENTITIES
from crm_qbo_plugin.settings import SettingsError, load_settings
from crm_qbo_plugin.state import get_state
from crm_qbo_plugin.store.tables import InboxNotice, OutboxEvent
from crm_qbo_plugin.store.types import utcnow
from tests.support.crm_stack import crm_stack
from tests.support.plugin_app import plugin_settings

TOKEN = "metrics-token-for-tests-0123456789"
METRICS = "/integrations/quickbooks/metrics"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


def scrape(stack) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of GET /metrics, by (name, labels)."""
    answer = stack.client.get(METRICS, headers=BEARER)
    assert answer.status_code == 200, answer.text
    assert answer.content_type.startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def by_label(samples, name: str, label: str) -> dict[str, float]:
    return {dict(labels)[label]: value for (sample, labels), value in samples.items() if sample == name}


def statuses(stack, table, *where) -> dict[str, int]:
    with get_state(stack.app).engine.connect() as conn:
        rows = conn.execute(sa.select(table.c.status, sa.func.count()).where(*where).group_by(table.c.status)).all()
    return {status: count for status, count in rows}


def sandbox_fault(stack, **spec) -> None:
    requests.post(f"{stack.sandbox_url}/_sandbox/faults", json=spec, timeout=10).raise_for_status()


def sell(stack) -> None:
    """What makes a QuickBooks customer and invoice: a contact, an invoice for them, sent."""
    contact = stack.api("POST", "/api/contacts", json={"first_name": "Ada", "email": "ada@example.com"}).json
    invoice = stack.api("POST", "/api/invoices", json={
        "contact_id": contact["id"], "lines": [{"name": "Work", "quantity": "1", "unit_price": "10.00"}]}).json
    assert stack.api("POST", f"/api/invoices/{invoice['id']}/send").status_code == 200


def qbo_invoices(stack) -> list[Decimal]:
    with stack.qbo() as qbo:
        return [Decimal(str(row["TotalAmt"])) for row in qbo.query_all("Invoice")]


@pytest.fixture
def stack(plugin_config, sandbox_url):
    with crm_stack({**plugin_config, "CRM_QBO_METRICS_TOKEN": TOKEN}, sandbox_url) as made:
        yield made


def test_a_push_a_drain_and_a_poll_move_their_counters_and_queue_depth_follows_the_work(stack):
    samples = scrape(stack)
    assert by_label(samples, "crm_qbo_outbox_pushes_total", "outcome") == {}
    assert by_label(samples, "crm_qbo_queue_depth", "queue") == {"rq_jobs": 0, "outbox_pending": 0}

    made = stack.api("POST", "/api/contacts", json={"first_name": "Ada", "email": "ada@example.com"})
    assert made.status_code == 201, made.json
    # Queued, not worked yet: one outbox row pending and its rq job.
    assert statuses(stack, OutboxEvent.__table__) == {"pending": 1}
    assert by_label(scrape(stack), "crm_qbo_queue_depth", "queue") == {"rq_jobs": 1, "outbox_pending": 1}

    stack.work()
    samples = scrape(stack)
    assert by_label(samples, "crm_qbo_outbox_pushes_total", "outcome") == {"skipped": 1}  # no billable activity yet
    assert by_label(samples, "crm_qbo_queue_depth", "queue") == {"rq_jobs": 0, "outbox_pending": 0}

    sell(stack)
    stack.work()
    assert qbo_invoices(stack) == [Decimal("10.00")]
    pushed = statuses(stack, OutboxEvent.__table__)
    assert pushed.get("done", 0) >= 1 and pushed.get("skipped", 0) >= 1
    assert by_label(scrape(stack), "crm_qbo_outbox_pushes_total", "outcome") == pushed

    # A change made in QuickBooks comes back by webhook and is drained into the CRM.
    with stack.qbo() as qbo:
        qbo.create("Customer", {"DisplayName": "Grace Hopper", "GivenName": "Grace"})
    stack.sync()
    inbox = InboxNotice.__table__
    drained = statuses(stack, inbox, inbox.c.entity.in_(APPLIED_ENTITIES))  # the others are settled on arrival
    assert drained.get("applied") == 1 and drained.get("skipped", 0) >= 1  # Grace; the echoes of our pushes
    assert by_label(scrape(stack), "crm_qbo_inbox_notices_total", "outcome") == drained

    enqueue_poll(get_state(stack.app), stack.tenant)
    stack.work()
    samples = scrape(stack)
    assert by_label(samples, "crm_qbo_cdc_polls_total", "outcome") == {"succeeded": 1}
    assert by_label(samples, "crm_qbo_failures_total", "kind") == {}
    assert samples[("crm_qbo_qbo_throttled_total", ())] == 0


def test_a_429_from_quickbooks_is_counted_and_the_push_still_lands(stack):
    # QBO asks for 60 s of quiet after a 429; the test's company for a tenth of a second.
    get_state(stack.app).limiter = RedisLimiter(get_state(stack.app).redis,
                                                LimiterConfig(cooldown_seconds=0.1, cooldown_jitter=0.0))
    sandbox_fault(stack, path=f"/v3/company/{stack.realm}/invoice", method="POST", status=429, times=1,
                  body={"Fault": {"Error": [{"Message": "ThrottleExceeded", "code": "003001"}], "type": "ThrottleExceeded"}})
    sell(stack)
    stack.work()
    assert qbo_invoices(stack) == [Decimal("10.00")]
    assert scrape(stack)[("crm_qbo_qbo_throttled_total", ())] == 1


def test_token_refreshes_are_counted_per_outcome(stack):
    state = get_state(stack.app)
    later = utcnow() + timedelta(days=40)  # the refresh token is then within the keep-alive window
    with stack.app.app_context():
        assert refresh_idle_connections(state, now=later) == 1
    assert by_label(scrape(stack), "crm_qbo_token_refreshes_total", "outcome") == {"refreshed": 1}

    sandbox_fault(stack, path="/oauth2/v1/tokens/bearer", status=400, times=1, body={"error": "invalid_grant"})
    with stack.app.app_context():
        assert refresh_idle_connections(state, now=later) == 0
    assert by_label(scrape(stack), "crm_qbo_token_refreshes_total", "outcome") == {
        "refreshed": 1, "reconnect_required": 1}


def test_the_endpoint_wants_the_bearer_token(stack):
    for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789-abcdef"}, {"Authorization": f"Basic {TOKEN}"},
                    {"Authorization": f"Bearer {TOKEN}x"}, {"Authorization": "Bearer tökén"}):
        answer = stack.client.get(METRICS, headers=headers)
        assert answer.status_code == 401, headers
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
        assert "crm_qbo" not in answer.text
    assert stack.client.get(METRICS, headers=BEARER).status_code == 200


def test_without_a_token_configured_there_is_no_endpoint(plugin_app):
    assert get_state(plugin_app).settings.metrics_token is None
    client = plugin_app.test_client()
    assert client.get(METRICS).status_code == 404
    assert client.get(METRICS, headers=BEARER).status_code == 404


@pytest.mark.parametrize("token", ["too-short", "has spaces in it but is long enough", "x" * 257])
def test_a_bad_metrics_token_stops_start_up(token):
    config = plugin_settings("sqlite:///x.db", "redis://127.0.0.1:6379/0", CRM_QBO_METRICS_TOKEN=token)
    with pytest.raises(SettingsError) as refused:
        load_settings(config, environ={})
    assert set(refused.value.problems) == {"METRICS_TOKEN"}


def test_log_records_inside_jobs_carry_tenant_and_realm(stack, caplog):
    caplog.set_level(logging.DEBUG, logger="crm_qbo_plugin")
    sell(stack)
    with stack.qbo() as qbo:  # outside any job: no tenant, no realm
        qbo.create("Customer", {"DisplayName": "Grace Hopper", "GivenName": "Grace"})
    outside = requests_logged(caplog)
    assert outside and all((r.crm_qbo_tenant, r.crm_qbo_realm) == ("-", "-") for r in outside)
    caplog.clear()

    stack.work()  # push jobs: they know the outbox row, the processor adds its tenant and realm
    pushed = requests_logged(caplog)
    assert {r.getMessage().split()[2].rsplit("/", 1)[1] for r in pushed} >= {"customer", "invoice"}
    assert all((r.crm_qbo_tenant, r.crm_qbo_realm) == (stack.tenant, stack.realm) for r in pushed)
    caplog.clear()

    requests.post(f"{stack.sandbox_url}/_sandbox/webhooks/deliver", json={}, timeout=30).raise_for_status()
    stack.work()  # drain jobs: they know the realm, the drain adds its tenant
    drained = requests_logged(caplog)
    assert drained and all((r.crm_qbo_tenant, r.crm_qbo_realm) == (stack.tenant, stack.realm) for r in drained)
    assert statuses(stack, InboxNotice.__table__, InboxNotice.__table__.c.status == "pending") == {}


def requests_logged(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage().startswith("qbo.request ")]


def test_a_redis_error_while_counting_does_not_fail_the_push(stack):
    state = get_state(stack.app)
    sell(stack)
    with state.engine.connect() as conn:
        outbox_ids = conn.execute(sa.select(OutboxEvent.__table__.c.id).order_by("id")).scalars().all()
    admin = redis.Redis.from_url(state.settings.redis_url)
    admin.execute_command("ACL", "SETUSER", "default", "-hincrby")  # Redis now refuses every count
    try:
        with pytest.raises(redis.RedisError):
            state.redis.hincrby("crm_qbo:metrics:pushes", "done", 1)
        with stack.app.app_context():  # as the worker would (rq itself needs HINCRBY for its own stats)
            outcomes = [process(state, outbox_id) for outbox_id in outbox_ids]
    finally:
        admin.execute_command("ACL", "SETUSER", "default", "+hincrby")
        admin.close()
    assert "done" in outcomes
    assert set(statuses(stack, OutboxEvent.__table__)) == {"done", "skipped"}  # none failed, none left
    assert qbo_invoices(stack) == [Decimal("10.00")]
    assert by_label(scrape(stack), "crm_qbo_outbox_pushes_total", "outcome") == {}


def test_log_records_of_a_web_request_carry_the_signed_in_users_tenant(stack, caplog):
    caplog.set_level(logging.DEBUG, logger="crm_qbo_plugin")
    web, _token = stack.sign_in()
    answer = web.get("/integrations/quickbooks/api/accounts")
    assert answer.status_code == 200 and answer.json
    read = requests_logged(caplog)
    assert read and all(r.crm_qbo_tenant == stack.tenant for r in read)
    caplog.clear()
    with stack.qbo():  # after the request: its tenant is gone
        logging.getLogger("crm_qbo_plugin.test").info("test.after_request")
    assert [(r.crm_qbo_tenant, r.crm_qbo_realm) for r in caplog.records if r.getMessage() == "test.after_request"] == [("-", "-")]


def test_the_hosts_own_log_fields_named_tenant_and_realm_still_work_beside_the_plugins(stack, caplog):
    """The plugin's log fields live on every record of the host's process: a host logging
    `extra={"tenant": …}` (the reference CRM did, on a repeated trigger) must not get logging's
    KeyError. In the soak it made the automation sweeper and a customer's notice fail until
    the notice was dead-lettered."""
    caplog.set_level(logging.INFO)
    host_log = logging.getLogger("reference_crm.test")
    with logs.bind(tenant=stack.tenant, realm=stack.realm):
        host_log.info("crm.trigger_repeated", extra={"tenant": "host-tenant", "realm": "host-realm"})
    (record,) = [r for r in caplog.records if r.getMessage() == "crm.trigger_repeated"]
    assert (record.tenant, record.realm) == ("host-tenant", "host-realm")
    assert (record.crm_qbo_tenant, record.crm_qbo_realm) == (stack.tenant, stack.realm)
