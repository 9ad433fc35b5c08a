"""Publishing host events: one durable outbox row per event key, delivered to a worker, and
recovered by the sweeper when Redis loses the job."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from rq import SimpleWorker
from rq.serializers import JSONSerializer
from sqlmodel import select

from crm_qbo_plugin import EventError, EventType, HostEvent, Origin, PaymentSource, QuickBooksPlugin
from crm_qbo_plugin.outbound.sweeper import sweep_outbox
from crm_qbo_plugin.state import get_state
from crm_qbo_plugin.store.db import session
from crm_qbo_plugin.store.tables import Connection, ConnectionStatus, OutboxEvent

TENANT = "loc-1"


def outbox_rows(app) -> list[OutboxEvent]:
    with session(get_state(app).engine) as db:
        return list(db.exec(select(OutboxEvent).order_by(OutboxEvent.id)))


def run_worker(app) -> None:
    state = get_state(app)
    with app.app_context():
        SimpleWorker([state.queue], connection=state.redis, serializer=JSONSerializer).work(burst=True)


def connect(app, tenant: str = TENANT, connected_at: datetime | None = None) -> None:
    with session(get_state(app).engine) as db:
        db.add(Connection(tenant_id=tenant, realm_id="9130", status=ConnectionStatus.CONNECTED.value,
                          connected_at=connected_at or datetime.now(UTC) - timedelta(days=1)))
        db.commit()


def contact_event(key: str = "evt-1", **kw) -> HostEvent:
    return HostEvent(type=EventType.CONTACT_CREATED, subject_id="c1", key=key, **kw)


def test_the_same_event_key_twice_gives_one_row(plugin_app):
    plugin = QuickBooksPlugin()
    with plugin_app.app_context():
        first = plugin.publish(TENANT, contact_event())
        second = plugin.publish(TENANT, contact_event())
        other_tenant = plugin.publish("loc-2", contact_event())
    assert first.created is True
    assert second.created is False
    assert second.outbox_id == first.outbox_id
    assert other_tenant.created is True
    rows = outbox_rows(plugin_app)
    assert [(r.tenant_id, r.event_key) for r in rows] == [(TENANT, "evt-1"), ("loc-2", "evt-1")]
    assert get_state(plugin_app).queue.count == 2  # the duplicate was not enqueued again


def test_a_published_event_reaches_a_worker(plugin_app):
    plugin = QuickBooksPlugin()
    with plugin_app.app_context():
        result = plugin.publish(TENANT, contact_event())
    run_worker(plugin_app)
    [row] = outbox_rows(plugin_app)
    assert row.id == result.outbox_id
    assert row.status == "skipped"
    assert row.last_error == "not connected to QuickBooks"
    assert row.attempts == 1


def test_a_connected_tenant_event_runs_its_handler_once(plugin_app):
    connect(plugin_app)
    seen: list[tuple[str, str]] = []
    get_state(plugin_app).handlers["quickbooks"]["contact.created"] = lambda state, row, conn: seen.append((row.subject_id, conn.realm_id))
    with plugin_app.app_context():
        QuickBooksPlugin().publish(TENANT, contact_event())
    run_worker(plugin_app)
    [row] = outbox_rows(plugin_app)
    assert (row.status, row.last_error) == ("done", None)
    assert seen == [("c1", "9130")]


def test_events_before_the_connection_and_from_qbo_are_not_pushed(plugin_app):
    connect(plugin_app, connected_at=datetime.now(UTC))
    get_state(plugin_app).handlers["quickbooks"]["contact.created"] = lambda *a: pytest.fail("must not push")
    with plugin_app.app_context():
        QuickBooksPlugin().publish(TENANT, contact_event("old", occurred_at=datetime.now(UTC) - timedelta(hours=1)))
        QuickBooksPlugin().publish(TENANT, contact_event("echo", origin=Origin.QBO))
    run_worker(plugin_app)
    reasons = {r.event_key: (r.status, r.last_error) for r in outbox_rows(plugin_app)}
    assert reasons == {
        "old": ("skipped", "happened before QuickBooks was connected (no retroactive sync)"),
        "echo": ("skipped", "came from QuickBooks; it is never pushed back"),
    }


def test_after_redis_is_flushed_the_sweeper_re_enqueues_and_the_work_completes(plugin_app):
    state = get_state(plugin_app)
    with plugin_app.app_context():
        QuickBooksPlugin().publish(TENANT, contact_event())
    state.redis.flushdb()
    assert state.queue.count == 0
    assert sweep_outbox(state) == 0  # the lease has not run out yet: the job may still be coming
    later = datetime.now(UTC) + timedelta(minutes=3)
    assert sweep_outbox(state, now=later) == 1
    assert sweep_outbox(state, now=later) == 0  # the lease was extended: no double enqueue
    run_worker(plugin_app)
    [row] = outbox_rows(plugin_app)
    assert row.status == "skipped" and row.attempts == 1


def test_a_job_still_waiting_in_a_long_queue_is_not_queued_again_when_its_lease_runs_out(plugin_app):
    """Behind a backlog a job may wait longer than its enqueue lease: the sweeper extends the lease
    and leaves the queued job alone (queuing another each round once piled ~3,000 jobs for ~200 rows
    and the backlog never drained)."""
    state = get_state(plugin_app)
    with plugin_app.app_context():
        QuickBooksPlugin().publish(TENANT, contact_event())
    assert state.queue.count == 1
    for minutes in (3, 6, 9):
        sweep_outbox(state, now=datetime.now(UTC) + timedelta(minutes=minutes))
    assert state.queue.count == 1
    run_worker(plugin_app)
    [row] = outbox_rows(plugin_app)
    assert row.status == "skipped" and row.attempts == 1


def test_a_row_claimed_by_a_dead_worker_is_recovered_after_its_lease(plugin_app):
    from crm_qbo_plugin.outbound.processor import claim, process

    state = get_state(plugin_app)
    with plugin_app.app_context():
        result = QuickBooksPlugin().publish(TENANT, contact_event())
    assert claim(state, result.outbox_id, datetime.now(UTC)) is not None  # then the worker "dies"
    assert process(state, result.outbox_id) == "not-claimed"  # a second job cannot take it meanwhile
    later = datetime.now(UTC) + timedelta(minutes=6)
    state.redis.flushdb()
    assert sweep_outbox(state, now=later) == 1
    assert process(state, result.outbox_id, now=later) == "skipped"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"type": EventType.PAYMENT_RECEIVED, "subject_id": "p1", "key": "k"}, "source"),
        ({"type": EventType.CONTACT_CREATED, "subject_id": "c1", "key": "k", "source": PaymentSource.ORDER_FORM}, "source"),
        ({"type": EventType.CONTACT_CREATED, "subject_id": "", "key": "k"}, "subject_id"),
        ({"type": EventType.CONTACT_CREATED, "subject_id": "c1", "key": "x" * 201}, "key"),
        ({"type": EventType.CONTACT_CREATED, "subject_id": "c1", "key": "k", "occurred_at": datetime(2026, 1, 1)}, "occurred_at"),
    ],
)
def test_invalid_events_are_refused_with_the_field_named(kwargs, field):
    with pytest.raises(EventError, match=f"^{field}:"):
        HostEvent(**kwargs)


def test_an_invalid_tenant_is_refused_and_nothing_is_written(plugin_app):
    with plugin_app.app_context(), pytest.raises(EventError, match="^tenant:"):
        QuickBooksPlugin().publish("", contact_event())
    assert outbox_rows(plugin_app) == []


def test_events_from_quickbooks_are_settled_at_intake_without_a_job(plugin_app):
    with plugin_app.app_context():
        result = QuickBooksPlugin().publish(TENANT, contact_event("imported", origin=Origin.QBO))
    assert result.created is True
    [row] = outbox_rows(plugin_app)
    assert (row.status, row.last_error, row.lease_until) == ("skipped", "came from QuickBooks; it is never pushed back", None)
    assert get_state(plugin_app).queue.count == 0


@pytest.mark.parametrize("error", [
    "redis", "auth", "database",
])
def test_passing_trouble_is_retried_with_backoff_never_failed(plugin_app, error):
    """Found by the 20-minute soaks: Redis restarting, a 401 that outlives one refresh while the
    token endpoint is failing, or SQLite locked by a paused worker, used to fail the record for good."""
    import redis as redis_lib
    import sqlalchemy as sa

    from crm_qbo_plugin.outbound.processor import process
    from crm_qbo_plugin.qbo import AuthenticationError

    connect(plugin_app)
    raised = {"redis": redis_lib.ConnectionError("Error 111 connecting"),
              "auth": AuthenticationError("Token expired", code="3200", status=401),
              "database": sa.exc.OperationalError("INSERT INTO qbo_link …", {}, Exception("database is locked"))}[error]

    def handler(state, row, conn):
        raise raised

    get_state(plugin_app).handlers["quickbooks"]["contact.created"] = handler
    with plugin_app.app_context():
        result = QuickBooksPlugin().publish(TENANT, contact_event())
    assert process(get_state(plugin_app), result.outbox_id) == "retry"
    [row] = outbox_rows(plugin_app)
    assert row.status == "pending" and row.lease_until is not None and row.attempts == 1
