"""A burst of webhook deliveries: each is stored before its 200 even while a worker holds the
database's write lock, the burst queues one drain job, and the drain applies its notices as one
batch (one query, one commit) — a notice that fails inside the batch is dead-lettered alone and no
change is written to the CRM twice."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from crm_qbo_plugin import Contact, Origin
from crm_qbo_plugin.qbo.notices import Notice
from crm_qbo_plugin.store import inbox
from crm_qbo_plugin.store.db import make_engine
from crm_qbo_plugin.store.tables import Connection
from crm_qbo_plugin.store.types import utcnow
from tests.support.inbound import TENANT, inbound_env
from tests.support.webhook_posts import legacy_body, post_signed

CONNECTIONS = Connection.__table__  # type: ignore[attr-defined]


@pytest.fixture
def env(plugin_config, sandbox_url):
    with inbound_env(plugin_config, sandbox_url) as env:
        yield env


def _queries(env: Any, reset: bool = False) -> int:
    answer = requests.get(f"{env.sandbox_url}/_sandbox/stats", params={"reset": "1"} if reset else None, timeout=10)
    answer.raise_for_status()
    return int(answer.json()["by_endpoint"].get("query", 0))


def _customers(env: Any, names: Sequence[str]) -> list[dict[str, Any]]:
    with env.qbo() as qbo:
        return [qbo.create("Customer", {"DisplayName": name, "PrimaryEmailAddr": {"Address": f"{name.lower()}@example.com"}})
                for name in names]


def _statuses(env: Any) -> dict[str, tuple[str, str]]:
    return {row["entity_id"]: (row["status"], row["reason"]) for row in env.inbox()}


def test_a_burst_of_single_notice_deliveries_queues_one_drain_and_one_query(env):
    created = _customers(env, ["Ann", "Bob", "Cy", "Dee", "Eve", "Fay"])
    bodies = [legacy_body(env.realm, [("Customer", c["Id"], "Create", c["MetaData"]["LastUpdatedTime"])]) for c in created]
    for body in bodies:
        answer = post_signed(env, body)
        assert (answer.status_code, answer.json()) == (200, {"recorded": 1, "duplicates": 0, "dead": 0})
    assert len(env.state.queue) == 1  # the first delivery queued the drain; the rest found it queued
    _queries(env, reset=True)
    env.work()
    assert _queries(env) == 1
    assert _statuses(env) == {c["Id"]: ("applied", "contact created") for c in created}
    assert sorted(env.host.writes) == sorted(("contact", link["crm_id"], Origin.QBO) for link in env.links("contact"))
    assert len(env.host.writes) == 6
    # a redelivery is counted on its row and applied never again
    again = post_signed(env, bodies[2])
    assert (again.status_code, again.json()) == (200, {"recorded": 0, "duplicates": 1, "dead": 0})
    env.work()
    assert len(env.host.writes) == 6
    assert [row["deliveries"] for row in env.inbox() if row["entity_id"] == created[2]["Id"]] == [2]


def _fail_on(name: str, original: Any) -> Any:
    def upsert_contact(tenant: str, contact: Contact, origin: Origin) -> str:
        if name in (contact.first_name, contact.last_name, contact.company_name):
            raise ValueError(f"the CRM refuses {name}")
        return str(original(tenant, contact, origin))
    return upsert_contact


def test_a_notice_failing_inside_a_batch_is_dead_lettered_alone_and_nothing_is_written_twice(env, monkeypatch):
    """A host without bulk writes: the batch's write stops at the refused contact; the batch is then
    applied notice by notice, which finds the contacts already written and only links them."""
    monkeypatch.setattr(env.host, "upsert_contact", _fail_on("Broken", env.host.upsert_contact))
    created = _customers(env, ["Ann", "Bob", "Broken", "Cy", "Dee"])
    env.sync()
    broken = created[2]["Id"]
    statuses = _statuses(env)
    assert statuses.pop(broken) == ("dead", "ValueError: the CRM refuses Broken")
    assert set(statuses.values()) <= {("applied", "contact created"), ("applied", "linked to the contact with the same email")}
    assert sorted(statuses) == sorted(c["Id"] for c in created if c["Id"] != broken)
    assert sorted(link["qbo_id"] for link in env.links("contact")) == sorted(statuses)
    assert len(env.host.writes) == 4 and len(env.host.contacts) == 4


def test_a_bulk_host_refusing_the_batch_writes_nothing_then_each_notice_is_applied_once(env, monkeypatch):
    """A host with an all-or-nothing bulk write that refuses the batch: nothing of it was written,
    so the notice-by-notice pass creates each good contact once and dead-letters the bad one."""
    host = env.host
    bulk_calls: list[int] = []

    def upsert_contacts(tenant: str, contacts: Sequence[Contact], origin: Origin) -> list[str]:
        bulk_calls.append(len(contacts))
        if any("Broken" in (c.first_name, c.last_name, c.company_name) for c in contacts):
            raise ValueError("the CRM refuses Broken")
        return [host.upsert_contact(tenant, c, origin) for c in contacts]

    monkeypatch.setattr(host, "upsert_contacts", upsert_contacts, raising=False)
    monkeypatch.setattr(host, "upsert_contact", _fail_on("Broken", host.upsert_contact))
    created = _customers(env, ["Ann", "Broken", "Cy"])
    env.sync()
    assert bulk_calls == [3]
    assert _statuses(env) == {
        created[0]["Id"]: ("applied", "contact created"),
        created[1]["Id"]: ("dead", "ValueError: the CRM refuses Broken"),
        created[2]["Id"]: ("applied", "contact created"),
    }
    assert len(host.writes) == 2 and len(host.contacts) == 2


def test_a_webhook_waits_for_a_held_write_lock_and_leaves_the_connection_as_it_found_it(env, database_url):
    """The answer's write waits (in short steps on SQLite) for a worker's open write transaction and
    lands once it commits; the pooled connection gets its lock settings back."""
    engine = make_engine(database_url, pool_size=1, max_overflow=0)
    holding, release = threading.Event(), threading.Event()

    def worker_transaction() -> None:
        with env.state.engine.begin() as conn:
            conn.execute(CONNECTIONS.update().where(CONNECTIONS.c.tenant_id == TENANT).values(last_webhook_at=None))
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=worker_transaction)
    holder.start()
    try:
        assert holding.wait(10)
        notice = Notice(env.realm, "Customer", "42", "Update", "Update@2026-01-01T00:00:00.000Z")
        stored: list[inbox.Recorded] = []
        writer = threading.Thread(target=lambda: stored.append(inbox.store_webhook(engine, [notice], utcnow())))
        writer.start()
        writer.join(0.3)
        assert stored == []  # still waiting for the lock
        release.set()
        writer.join(10)
        (result,) = stored
        assert (result.recorded, result.duplicates, result.pending_realms) == (1, 0, {env.realm})
        assert [(r["entity_id"], r["status"], r["tenant_id"]) for r in env.inbox()] == [("42", "pending", TENANT)]
        with engine.connect() as conn:
            assert conn.execute(sa.select(CONNECTIONS.c.last_webhook_at)).scalar_one() is not None
            if engine.dialect.name == "sqlite":
                assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
                assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 1000
    finally:
        release.set()
        holder.join(10)
        engine.dispose()
