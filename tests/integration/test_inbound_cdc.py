"""CDC polling as the safety net (B16, B17, B18): missed webhooks, a 6-week pause, saturated
windows; and webhooks plus CDC together applying nothing twice."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import requests

from crm_qbo_plugin.inbound.cdc import CURSOR, enqueue_polls, poll
from crm_qbo_plugin.store import cursors
from crm_qbo_plugin.store.tables import RunStatus
from crm_qbo_plugin.store.types import utcnow
from tests.support.inbound import TENANT, inbound_env, seed


def _line(amount: str) -> dict:
    value = Decimal(amount)
    return {"DetailType": "SalesItemLineDetail", "Amount": value,
            "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "Qty": Decimal("1"), "UnitPrice": value}}


def _poll(env):
    with env.app.app_context():
        return poll(env.state, TENANT)


def _changes_in_qbo(env):
    with env.qbo() as qbo:
        ann = qbo.create("Customer", {"DisplayName": "Ann Able", "GivenName": "Ann"})
        qbo.update("Customer", {"Id": ann["Id"], "SyncToken": "0", "PrimaryPhone": {"FreeFormNumber": "555-1"}})
        bob = qbo.create("Customer", {"DisplayName": "Bob Baker"})
        kept = qbo.create("Invoice", {"CustomerRef": {"value": bob["Id"]}, "Line": [_line("80.00")]})
        gone = qbo.create("Invoice", {"CustomerRef": {"value": ann["Id"]}, "Line": [_line("20.00")]})
        qbo.create("Payment", {"CustomerRef": {"value": bob["Id"]}, "TotalAmt": Decimal("80.00"),
                               "Line": [{"Amount": Decimal("80.00"), "LinkedTxn": [{"TxnId": kept["Id"], "TxnType": "Invoice"}]}]})
    return ann, bob, kept, gone


def test_with_webhooks_off_one_poll_brings_every_change(plugin_config, sandbox_url):
    """B16: nothing is delivered; the poll brings contacts, invoices, a payment and a delete."""
    with inbound_env(plugin_config, sandbox_url, webhooks=False, import_invoices=True) as env:
        ann, bob, kept, gone = _changes_in_qbo(env)
        first = _poll(env)
        assert first is not None and first.status == RunStatus.SUCCEEDED.value and first.errors == []
        assert first.counts["applied"] == 4 and first.counts["windows"] == 1
        contacts = {c.first_name: c for c in env.host.contacts.values()}
        assert contacts["Ann"].phone == "555-1" and set(contacts) == {"Ann", "Bob"}
        paid = env.host.invoices[(TENANT, env.link("invoice", kept["Id"])["crm_id"])]
        assert (paid.status.value, paid.amount_paid) == ("paid", Decimal("80.00"))
        with env.qbo() as qbo:
            qbo.delete("Invoice", gone["Id"], qbo.read("Invoice", gone["Id"])["SyncToken"])
        writes = len(env.host.writes)
        second = _poll(env)
        assert second.counts["applied"] == 1  # only the delete; the overlap re-saw the rest
        assert env.link("invoice", gone["Id"])["status"] == "deleted"
        assert len(env.host.writes) == writes + 1
        assert all(n["source"] == "cdc" for n in env.inbox())
        watermark = cursors.load_time(env.state.engine, TENANT, CURSOR)
        assert watermark is not None and (utcnow() - watermark) < timedelta(minutes=1)


def test_webhooks_and_cdc_together_apply_each_change_once(plugin_config, sandbox_url):
    with inbound_env(plugin_config, sandbox_url, import_invoices=True) as env:
        _changes_in_qbo(env)
        env.sync()
        writes = list(env.host.writes)
        run = _poll(env)
        assert run.counts["applied"] == 0 and run.counts["changes"] == 4
        env.deliver(force=True)
        env.work()
        assert env.host.writes == writes
        assert len(env.host.contacts) == 2 and len(env.host.invoices) == 2


def test_webhooks_dropped_for_a_while_then_delivered_late_change_nothing(plugin_config, sandbox_url):
    """The endpoint is down for a while (deliveries fail), CDC catches up, the late ones are no-ops."""
    with inbound_env(plugin_config, sandbox_url, import_invoices=True) as env:
        requests.post(f"{sandbox_url}/_sandbox/faults", json={"path": "/integrations/quickbooks/webhooks"}, timeout=10)
        _changes_in_qbo(env)
        env.deliver()
        _poll(env)
        writes = list(env.host.writes)
        assert len(env.host.contacts) == 2 and len(env.host.invoices) == 2
        env.deliver(force=True)
        env.work()
        assert env.host.writes == writes
        assert {n["status"] for n in env.inbox() if n["source"] == "webhook"} <= {"skipped"}


def test_a_watermark_older_than_30_days_runs_a_full_reconcile_that_finds_deletes(plugin_config, sandbox_url):
    """B17: after a 6-week pause the poll lists everything; a linked invoice missing from the
    complete listing is marked deleted; the watermark restarts at now."""
    with inbound_env(plugin_config, sandbox_url, webhooks=False, import_invoices=True) as env:
        ann, bob, kept, gone = _changes_in_qbo(env)
        _poll(env)
        with env.qbo() as qbo:
            qbo.delete("Invoice", gone["Id"], qbo.read("Invoice", gone["Id"])["SyncToken"])
            carl = qbo.create("Customer", {"DisplayName": "Carl Cole"})
        cursors.save(env.state.engine, TENANT, CURSOR, utcnow() - timedelta(days=42))
        run = _poll(env)
        assert run.counts["reconciled"] is True and run.errors == []
        assert run.counts["deleted"] == 1
        assert env.link("invoice", gone["Id"])["status"] == "deleted"
        assert env.link("contact", carl["Id"]) is not None
        assert env.link("invoice", kept["Id"])["status"] == "synced"
        assert (utcnow() - cursors.load_time(env.state.engine, TENANT, CURSOR)) < timedelta(minutes=1)


def test_a_saturated_window_is_split_and_nothing_is_missed(plugin_config, sandbox_url):
    """B18: 1300 changes since the watermark; the 1000-object answer is cut before its newest
    object, applied, and the rest fetched from there."""
    with inbound_env(plugin_config, sandbox_url, webhooks=False) as env:
        seed(env, "Customer", [{"DisplayName": f"Early {i}"} for i in range(700)])
        requests.post(f"{sandbox_url}/_sandbox/clock", json={"advance_seconds": 90}, timeout=10)
        seed(env, "Customer", [{"DisplayName": f"Late {i}"} for i in range(600)])
        run = _poll(env)
        assert run.errors == [] and run.counts["splits"] >= 1 and run.counts["windows"] >= 2
        assert len(env.links("contact")) == 1300 and len(env.host.contacts) == 1300
        assert run.counts["applied"] == 1300


def test_the_scheduler_job_enqueues_one_ids_only_poll_per_connected_tenant(plugin_config, sandbox_url):
    with inbound_env(plugin_config, sandbox_url, webhooks=False) as env:
        with env.qbo() as qbo:
            qbo.create("Customer", {"DisplayName": "Scheduled Sam"})
        with env.app.app_context():
            assert enqueue_polls(env.state) == 1
        (job,) = env.state.queue.get_jobs()
        assert (job.func_name, job.args) == ("crm_qbo_plugin.jobs.inbound_tasks.poll_cdc", [TENANT])
        env.work()
        assert [c.first_name for c in env.host.contacts.values()] == ["Scheduled"]


def test_quickbooks_news_is_queued_ahead_of_an_outbound_backlog(plugin_config, sandbox_url):
    """A poll, a drain and an import are cheap and what users wait for: they do not wait behind a
    backlog of outbound pushes (a long settle once left 972 notices behind 1,600 pushes)."""
    from crm_qbo_plugin.inbound.enqueue import (
        DRAIN_INBOX,
        POLL_CDC,
        RUN_IMPORT,
        enqueue_import,
        request_drain,
    )
    from crm_qbo_plugin.runtime.queue import PROCESS_OUTBOX, enqueue_outbox

    with inbound_env(plugin_config, sandbox_url, webhooks=False) as env:
        env.state.queue.empty()
        for outbox_id in range(1, 4):
            enqueue_outbox(env.state.queue, outbox_id)
        with env.app.app_context():
            assert enqueue_polls(env.state) == 1
            assert request_drain(env.state, env.realm)
            enqueue_import(env.state, TENANT)
        assert [job.func_name for job in env.state.queue.get_jobs()] == [
            RUN_IMPORT, DRAIN_INBOX, POLL_CDC, PROCESS_OUTBOX, PROCESS_OUTBOX, PROCESS_OUTBOX]


def test_inbound_jobs_keep_no_result_once_done(plugin_config, sandbox_url):
    """Nothing reads a poll's, a drain's or an import's return value: rq deletes the finished job
    (no result written, nothing listed as finished), which saves Redis writes on every job."""
    from rq.job import Job
    from rq.registry import FinishedJobRegistry

    from crm_qbo_plugin.inbound.enqueue import enqueue_import, request_drain

    with inbound_env(plugin_config, sandbox_url, webhooks=False) as env:
        env.state.queue.empty()
        with env.app.app_context():
            assert enqueue_polls(env.state) == 1
            assert request_drain(env.state, env.realm)
            enqueue_import(env.state, TENANT)
        jobs = env.state.queue.get_jobs()
        assert [job.result_ttl for job in jobs] == [0, 0, 0]
        env.work()
        assert FinishedJobRegistry(queue=env.state.queue).get_job_ids() == []
        assert [Job.exists(job.id, connection=env.state.redis) for job in jobs] == [False, False, False]


def test_more_than_1000_changes_in_a_burst_still_all_arrive(plugin_config, sandbox_url):
    """B18 worst case: 1300 changes within a few seconds. Halving narrows the window second by
    second; if more than 1000 share the last second, the poll falls back to a full listing."""
    with inbound_env(plugin_config, sandbox_url, webhooks=False) as env:
        seed(env, "Customer", [{"DisplayName": f"Burst {i}"} for i in range(1300)])
        run = _poll(env)
        assert run.errors == [] and run.counts["windows"] >= 1
        assert run.counts["splits"] >= 1 or run.counts["reconciled"] is True
        assert len(env.links("contact")) == 1300 and len(env.host.contacts) == 1300
        second = _poll(env)
        assert second.counts["applied"] == 0 and len(env.host.contacts) == 1300


def test_turning_auto_sync_off_on_the_card_stops_the_scheduled_polls(plugin_config, sandbox_url):
    from crm_qbo_plugin.onboarding.setup import update_settings

    with inbound_env(plugin_config, sandbox_url, webhooks=False) as env, env.app.app_context():
        update_settings(env.state, TENANT, {"auto_sync": False})
        assert enqueue_polls(env.state) == 0
        assert env.state.queue.count == 0
        update_settings(env.state, TENANT, {"auto_sync": True})
        assert enqueue_polls(env.state) == 1
