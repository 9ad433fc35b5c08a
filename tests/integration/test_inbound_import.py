"""Import on connect: every customer (matched by email instead of duplicated) and, with the toggle
on, every invoice — in pages of 1000, checkpointed, exactly once even when the worker is SIGKILLed
half way and a new one resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

import requests
import sqlalchemy as sa

from crm_qbo_plugin import Contact, HostUser
from crm_qbo_plugin.inbound.importer import import_lock, import_unfinished, run_import, start_import
from crm_qbo_plugin.onboarding.lifecycle import authorization_url, complete_connect
from crm_qbo_plugin.runtime.realm_lock import realm_lock
from crm_qbo_plugin.store import cursors
from crm_qbo_plugin.store.tables import Link, SyncRun
from tests.support.file_host import FileHost
from tests.support.inbound import TENANT, inbound_env, seed
from tests.support.plugin_app import create_app
from tests.support.sandbox_qbo import approve, create_company, plugin_overrides, register_app

ROOT = Path(__file__).resolve().parents[2]


def _line(amount: str) -> dict:
    value = Decimal(amount)
    return {"DetailType": "SalesItemLineDetail", "Amount": value,
            "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "Qty": Decimal("1"), "UnitPrice": value}}


def _seed_books(env, customers: int, invoices: int) -> tuple[list[dict], list[dict]]:
    people = seed(env, "Customer", [
        {"DisplayName": f"Person {i}", **({"PrimaryEmailAddr": {"Address": f"p{i}@example.com"}} if i % 3 else {})}
        for i in range(customers)])
    bills = seed(env, "Invoice", [
        {"CustomerRef": {"value": people[i % customers]["Id"]}, "Line": [_line(f"{10 + i % 7}.50")]} for i in range(invoices)])
    return people, bills


def _runs(env) -> list:
    return env.rows(SyncRun, SyncRun.kind == "import")


def test_connect_enqueues_the_import_and_the_toggle_is_remembered(plugin_config, sandbox_url):
    register_app(sandbox_url)
    realm = create_company(sandbox_url)
    app = create_app({**plugin_config, **plugin_overrides(sandbox_url)})
    user = HostUser(id="u-1", tenant=TENANT)
    with app.app_context():
        from crm_qbo_plugin.state import get_state

        state = get_state()
        url = authorization_url(state, user, "nonce-1", import_invoices=True)
        connection = complete_connect(state, user, "nonce-1", approve(url, realm))
        assert connection.settings["import_invoices"] is True
        (job,) = state.queue.get_jobs()
        assert (job.func_name, job.args) == ("crm_qbo_plugin.jobs.inbound_tasks.run_import", [TENANT])
        (run,) = state.engine.connect().execute(sa.select(SyncRun.__table__)).mappings()
        assert (run["kind"], run["status"]) == ("import", "running")
        state.engine.dispose()


def test_import_brings_every_customer_and_invoice_once_in_pages_of_1000(plugin_config, sandbox_url):
    with inbound_env(plugin_config, sandbox_url, webhooks=False, import_invoices=True) as env:
        people, bills = _seed_books(env, 2100, 1100)
        env.host.contacts[(TENANT, "c-existing")] = Contact(id="c-existing", email="P4@example.com", first_name="Known")
        requests.delete(f"{sandbox_url}/_sandbox/stats", timeout=10)
        with env.app.app_context():
            start_import(env.state, TENANT)
        env.work()
        stats = requests.get(f"{sandbox_url}/_sandbox/stats", timeout=10).json()
        (run,) = _runs(env)
        assert run["status"] == "succeeded" and run["errors"] == []
        assert run["counts"] == {"customers_total": 2100, "customers_done": 2100, "invoices_total": 1100, "invoices_done": 1100}
        assert stats["by_endpoint"].get("query") == 2 + 3 + 2  # two COUNTs, then one query per 1000 records
        assert not any(name.endswith(".read") for name in stats["by_endpoint"])
        contacts = env.links("contact")
        assert len(contacts) == 2100 and len({row["crm_id"] for row in contacts}) == 2100
        assert env.link("contact", people[4]["Id"])["crm_id"] == "c-existing"
        assert len(env.host.contacts) == 2100  # the known contact was matched, not duplicated
        assert len(env.links("invoice")) == 1100 and len(env.host.invoices) == 1100
        assert Counter(w[0] for w in env.host.writes) == {"contact": 2099, "invoice": 1100}
        assert cursors.load(env.state.engine, TENANT, "import:Customer") == people[-1]["Id"]
        assert cursors.load(env.state.engine, TENANT, "import:Invoice") == bills[-1]["Id"]


def test_with_the_toggle_off_no_invoice_is_imported(plugin_config, sandbox_url):
    with inbound_env(plugin_config, sandbox_url, webhooks=False, import_invoices=False) as env:
        _seed_books(env, 40, 25)
        with env.app.app_context():
            start_import(env.state, TENANT)
        env.work()
        (run,) = _runs(env)
        assert run["counts"] == {"customers_total": 40, "customers_done": 40}
        assert env.host.invoices == {} and env.links("invoice") == []
        assert len(env.host.contacts) == 40


def test_with_customers_and_invoices_off_nothing_is_imported(plugin_config, sandbox_url):
    with inbound_env(plugin_config, sandbox_url, webhooks=False, import_invoices=False, import_customers=False) as env:
        _seed_books(env, 5, 3)
        with env.app.app_context():
            start_import(env.state, TENANT)
        env.work()
        (run,) = _runs(env)
        assert (run["status"], run["counts"]) == ("succeeded", {})
        assert env.host.contacts == {} and env.host.invoices == {} and env.links("contact") == []


def test_a_worker_killed_mid_import_resumes_and_imports_each_record_exactly_once(plugin_config, sandbox_url, tmp_path):
    """The import runs in a subprocess against a CRM kept in a file; it is SIGKILLed while the
    second page of customers is being written (host writes done, page not committed). The locks it
    held are left to expire (deleted here, as their TTL would), then a fresh run resumes from the
    checkpoint and re-writes the interrupted page idempotently."""
    with inbound_env(plugin_config, sandbox_url, webhooks=False, import_invoices=True) as env:
        people, bills = _seed_books(env, 2500, 1200)
        host_path = tmp_path / "crm.db"
        config_path = tmp_path / "config.json"
        config_path.write_text(json.dumps({**plugin_config, **plugin_overrides(sandbox_url)}))
        file_host = FileHost(host_path)
        with env.app.app_context():
            start_import(env.state, TENANT)
        env.state.queue.empty()  # the job is run by the subprocess below instead
        worker = subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
            [sys.executable, "-m", "tests.support.import_worker", str(config_path), str(host_path), TENANT],
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 120
            while file_host.count("contact") < 1300:
                assert worker.poll() is None, worker.stderr.read().decode() if worker.stderr else ""
                assert time.monotonic() < deadline
                time.sleep(0.005)
            os.kill(worker.pid, signal.SIGKILL)
        finally:
            worker.wait(timeout=30)
        assert worker.returncode == -signal.SIGKILL
        written_before_kill = file_host.count("contact")
        checkpoint = cursors.load(env.state.engine, TENANT, "import:Customer")
        assert checkpoint == people[999]["Id"]  # page 1 committed, page 2 was in flight
        assert 1000 < written_before_kill < 2500
        assert len(env.links("contact")) == 1000
        with env.app.app_context():
            assert not import_unfinished(env.state, TENANT)  # the dead worker's lock is still there
        env.state.redis.delete(import_lock(env.state, TENANT).key, realm_lock(env.state.redis, env.realm).key)
        with env.app.app_context():
            assert import_unfinished(env.state, TENANT)
            env.state.host = file_host
            run = run_import(env.state, TENANT)
        assert run is not None and run.status == "succeeded"
        assert run.counts == {"customers_total": 2500, "customers_done": 2500, "invoices_total": 1200, "invoices_done": 1200}
        contacts = file_host.all("contact", TENANT)
        assert len(contacts) == 2500
        assert len({c.email for c in contacts if c.email}) == len([p for p in people if "PrimaryEmailAddr" in p])
        assert file_host.count("invoice") == 1200
        links = env.rows(Link, Link.tenant_id == TENANT)
        assert Counter(row["kind"] for row in links) == {"contact": 2500, "invoice": 1200}
        assert {row["qbo_id"] for row in links if row["kind"] == "invoice"} == {b["Id"] for b in bills}
