"""The push of a backlog makes the calls QBO's batch floor needs and no more: invoices 30 to a
`/batch`, each new customer one create, one e-mail query for the contacts of many batches, no
reads for contacts whose customer the push just made; leaders claim disjoint full batches."""

from __future__ import annotations

import threading

import rq
from rq.serializers import JSONSerializer
from sqlmodel import select

from crm_qbo_plugin.events import EventType
from crm_qbo_plugin.outbound import batching
from crm_qbo_plugin.outbound.context import Push
from crm_qbo_plugin.outbound.customers import absent_emails, link_new_customer, note_absent
from crm_qbo_plugin.outbound.processor import claim
from crm_qbo_plugin.runtime.clients import client_for
from crm_qbo_plugin.store.db import session
from crm_qbo_plugin.store.links import CONTACT, get_link
from crm_qbo_plugin.store.tables import Connection, OutboxEvent
from crm_qbo_plugin.store.types import utcnow
from tests.integration.outbound_helpers import (
    TENANT,
    connect,
    contact,
    invoice,
    make_app,
    proxied,
    publish,
    qbo_rows,
    run_worker,
    state_of,
)


def _seed(app, fake_host, contacts: int, per_contact: int) -> None:
    """Like the benchmark: each contact is created (its event published), then its invoices sent."""
    for n in range(contacts):
        fake_host.contacts[(TENANT, f"c{n}")] = contact(f"c{n}", email=f"person{n}@example.com", first=f"P{n}")
        publish(app, EventType.CONTACT_CREATED, f"c{n}")
        for k in range(per_contact):
            fake_host.invoices[(TENANT, f"i{n}-{k}")] = invoice(f"i{n}-{k}", f"c{n}")
            publish(app, EventType.INVOICE_SENT, f"i{n}-{k}")


def _push_of(app, realm: str, qbo, row_id: int) -> Push:
    state = state_of(app)
    with session(state.engine) as db:
        conn = db.exec(select(Connection).where(Connection.tenant_id == TENANT)).one()
        row = db.get(OutboxEvent, row_id)
    assert row is not None
    return Push(state, conn, row, qbo)


def test_backlog_of_new_contacts_costs_the_batch_floor(plugin_config, fake_host, sandbox_url):
    with proxied(sandbox_url) as proxy:
        app, realm = make_app(plugin_config, fake_host, sandbox_url, api_url=proxy.url)
        connect(app, sandbox_url, realm)
        _seed(app, fake_host, contacts=9, per_contact=10)
        run_worker(app)
        batches = proxy.writes("/batch")
        customer_creates = proxy.writes("/customer")
        reads = [r for r in proxy.requests if r["method"] == "GET" and "/customer/" in r["path"]]
        queries = [r for r in proxy.requests if r["path"].endswith("/query")]
        email_queries = [q for q in queries if "PrimaryEmailAddr" in str(q.get("body")) + str(q.get("args"))]
        assert len(qbo_rows(app, realm, "Invoice")) == 90
        assert len(qbo_rows(app, realm, "Customer")) == 9
    assert [len(b["body"]["BatchItemRequest"]) for b in batches] == [30, 30, 30]
    assert proxy.writes("/invoice") == []  # no single invoice creates
    assert len(customer_creates) == 9 and reads == []  # contact.created of a contact just pushed: no read
    assert len(email_queries) == 1  # the first leader's query covered every contact waiting
    assert len(queries) == 2  # and one for the item, created once
    assert len(proxy.writes("/item")) == 1
    state = state_of(app)
    assert all(get_link(state, TENANT, "invoice", f"i{n}-{k}").status == "synced" for n in range(9) for k in range(10))
    assert len({get_link(state, TENANT, CONTACT, f"c{n}").qbo_id for n in range(9)}) == 9


def test_two_leaders_claim_disjoint_full_batches_and_a_release_gives_rows_back(plugin_config, fake_host, sandbox_url):
    app, realm = make_app(plugin_config, fake_host, sandbox_url)
    connect(app, sandbox_url, realm)
    fake_host.contacts[(TENANT, "c1")] = contact()
    ids = []
    for n in range(70):
        fake_host.invoices[(TENANT, f"i{n}")] = invoice(f"i{n}")
        ids.append(publish(app, EventType.INVOICE_SENT, f"i{n}"))
    state = state_of(app)
    with app.app_context(), client_for(state, realm) as qbo:
        leaders = [claim(state, outbox_id, utcnow()) for outbox_id in ids[:3]]  # as their own jobs did
        assert all(leader is not None for leader in leaders)
        first = batching.claim(_push_of(app, realm, qbo, ids[0]), 29)
        second = batching.claim(_push_of(app, realm, qbo, ids[1]), 29)
        assert [r.id for r in first] == ids[3:32] and [r.id for r in second] == ids[32:61]
        assert all(r.status == "processing" and r.attempts == 1 for r in first + second)
        batching.release(_push_of(app, realm, qbo, ids[0]), first[:2], batching.SINGLE_PATH + "test")
        batching.release(_push_of(app, realm, qbo, ids[0]), first[2:])
        with session(state.engine) as db:
            back = [db.get(OutboxEvent, r.id) for r in first]
        assert all(r is not None and r.status == "pending" and r.attempts == 0 for r in back)
        assert [r.last_error for r in back[:3]] == ["left to the single path: test", "left to the single path: test", None]
        third = batching.claim(_push_of(app, realm, qbo, ids[2]), 29)
    # rows handed back with a reason stay out of batches; the others are claimable again, oldest first
    assert [r.id for r in third] == ids[5:32] + ids[61:63]


def test_absent_notes_skip_contacts_being_pushed_and_a_create_uses_its_note_up(plugin_config, fake_host, sandbox_url):
    app, realm = make_app(plugin_config, fake_host, sandbox_url)
    connect(app, sandbox_url, realm)
    fake_host.invoices[(TENANT, "i1")] = invoice("i1")
    row_id = publish(app, EventType.INVOICE_SENT, "i1")
    state = state_of(app)
    with app.app_context(), client_for(state, realm) as qbo:
        push = _push_of(app, realm, qbo, row_id)
        held = push.try_lock(CONTACT, "c2")
        assert held is not None
        note_absent(push, [("a@example.com", "c1"), ("b@example.com", "c2")])
        assert absent_emails(push, ["A@Example.com", "b@example.com"]) == {"a@example.com"}
        held.release()
        customer_id = link_new_customer(push, contact("c1", email="a@example.com"), [])
        assert absent_emails(push, ["a@example.com"]) == set()  # used up before the create
    assert get_link(state, TENANT, CONTACT, "c1").qbo_id == customer_id
    assert not any(key for key in state.redis.scan_iter("crm-qbo:push:*absent-email*"))


def test_a_contact_another_worker_holds_is_waited_for_not_left_out(plugin_config, fake_host, sandbox_url):
    with proxied(sandbox_url) as proxy:
        app, realm = make_app(plugin_config, fake_host, sandbox_url, api_url=proxy.url)
        connect(app, sandbox_url, realm)
        fake_host.contacts[(TENANT, "c1")] = contact("c1", email="one@example.com")
        fake_host.contacts[(TENANT, "c2")] = contact("c2", email="two@example.com")
        for n in range(6):
            fake_host.invoices[(TENANT, f"i{n}")] = invoice(f"i{n}", "c1" if n % 2 else "c2")
            publish(app, EventType.INVOICE_SENT, f"i{n}")
        state = state_of(app)
        other = state.redis.lock(f"crm-qbo:push:{TENANT}:{CONTACT}:c1", timeout=60, thread_local=False)
        assert other.acquire(blocking=False)
        timer = threading.Timer(1.0, other.release)
        timer.start()
        try:
            run_worker(app)
        finally:
            timer.join()
        batches = proxy.writes("/batch")
        assert len(qbo_rows(app, realm, "Customer")) == 2
    assert [len(b["body"]["BatchItemRequest"]) for b in batches] == [6]
    assert proxy.writes("/invoice") == []


def test_an_invoice_another_worker_is_pushing_is_left_to_its_own_job(plugin_config, fake_host, sandbox_url):
    with proxied(sandbox_url) as proxy:
        app, realm = make_app(plugin_config, fake_host, sandbox_url, api_url=proxy.url)
        connect(app, sandbox_url, realm)
        fake_host.contacts[(TENANT, "c1")] = contact()
        ids = {}
        for n in range(6):
            fake_host.invoices[(TENANT, f"i{n}")] = invoice(f"i{n}")
            ids[n] = publish(app, EventType.INVOICE_SENT, f"i{n}")
        state = state_of(app)
        # e.g. a worker running the invoice's update, which would create it if it has no link yet
        other = state.redis.lock(f"crm-qbo:push:{TENANT}:invoice:i3", timeout=60, thread_local=False)
        assert other.acquire(blocking=False)
        timer = threading.Timer(1.0, other.release)
        timer.start()
        try:
            run_worker(app)
        finally:
            timer.join()
        batches = proxy.writes("/batch")
        singles = proxy.writes("/invoice")
        assert len(qbo_rows(app, realm, "Invoice")) == 6
    assert [len(b["body"]["BatchItemRequest"]) for b in batches] == [5]
    assert len(singles) == 1
    with session(state.engine) as db:
        row = db.get(OutboxEvent, ids[3])
    assert row is not None and (row.status, row.attempts, row.last_error) == ("done", 1, None)
    assert get_link(state, TENANT, "invoice", "i3").status == "synced"


def test_a_batch_takes_its_members_jobs_out_of_the_queue(plugin_config, fake_host, sandbox_url):
    """A member the batch pushed has nothing left to do: its job is removed, not run to find its row
    done (rq's bookkeeping of a no-op job is most of a pushed invoice's CPU)."""
    app, realm = make_app(plugin_config, fake_host, sandbox_url)
    connect(app, sandbox_url, realm)
    fake_host.contacts[(TENANT, "c1")] = contact()
    for n in range(30):
        fake_host.invoices[(TENANT, f"i{n}")] = invoice(f"i{n}")
        publish(app, EventType.INVOICE_SENT, f"i{n}")
    state = state_of(app)
    assert state.queue.count == 30
    executed: list[str] = []
    with app.app_context():
        worker = rq.SimpleWorker([state.queue], connection=state.redis, serializer=JSONSerializer)
        real = worker.perform_job
        worker.perform_job = lambda job, *rest: executed.append(job.id) or real(job, *rest)  # type: ignore[method-assign]
        worker.work(burst=True)
    assert len(qbo_rows(app, realm, "Invoice")) == 30
    assert executed == ["crm-qbo-outbox-1"]  # the leader: its 29 members' jobs were taken out
    assert state.queue.count == 0 and state.redis.keys("rq:job:crm-qbo-outbox-2*") == []
