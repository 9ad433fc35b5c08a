"""One effective scheduler at a time, and the worker command processing real jobs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis
from sqlmodel import select

from crm_qbo_plugin import EventType, HostEvent, QuickBooksPlugin
from crm_qbo_plugin.inbound.enqueue import POLL_CDC
from crm_qbo_plugin.jobs.scheduler import LeaderScheduler, ScheduledJob, plugin_jobs
from crm_qbo_plugin.runtime.locks import LeaderLock
from crm_qbo_plugin.state import get_state
from crm_qbo_plugin.store.db import session
from crm_qbo_plugin.store.tables import OutboxEvent
from reference_crm.app import create_app
from tests.support.connected import connect_directly
from tests.support.reference_crm_app import close, crm_config, new_location
from tests.support.sandbox_qbo import create_company, plugin_overrides, register_app

ROOT = Path(__file__).resolve().parents[2]


def wait_for(predicate, timeout: float = 10.0, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


def test_leader_lock_is_exclusive_and_only_its_holder_renews_or_releases(redis_url):
    conn = redis.Redis.from_url(redis_url)
    first, second = LeaderLock(conn, ttl_seconds=5), LeaderLock(conn, ttl_seconds=5)
    assert first.try_acquire_or_renew() is True
    assert second.try_acquire_or_renew() is False
    second.release()  # not ours: must not drop the first's lock
    assert first.holder() == first.token
    first.release()
    assert second.try_acquire_or_renew() is True


def test_a_second_scheduler_stays_idle_and_takes_over_when_the_first_dies(redis_url):
    conn = redis.Redis.from_url(redis_url)
    ticks: list[str] = []
    first = LeaderScheduler(conn, [ScheduledJob("tick", 0.1, lambda: ticks.append("first"))], lock_ttl=1.0, heartbeat=0.2)
    second = LeaderScheduler(conn, [ScheduledJob("tick", 0.1, lambda: ticks.append("second"))], lock_ttl=1.0, heartbeat=0.2)
    first.start()
    second.start()
    try:
        assert wait_for(lambda: ticks.count("first") >= 5)
        assert "second" not in ticks and not second.is_leader
        first.stop(release=False)  # a crash: the lock is left to expire
        assert wait_for(lambda: "second" in ticks, timeout=5)
        assert second.is_leader
        handover = ticks.index("second")
        assert "first" not in ticks[handover:]
    finally:
        second.stop()


def test_a_scheduler_that_takes_over_runs_its_start_jobs_at_once(redis_url):
    conn = redis.Redis.from_url(redis_url)
    ticks: list[str] = []
    first = LeaderScheduler(conn, [ScheduledJob("poll", 3600, lambda: ticks.append("first"), run_at_start=True)],
                            lock_ttl=1.0, heartbeat=0.2)
    second = LeaderScheduler(conn, [ScheduledJob("poll", 3600, lambda: ticks.append("second"), run_at_start=True)],
                             lock_ttl=1.0, heartbeat=0.2)
    first.start()
    second.start()
    try:
        assert wait_for(lambda: ticks == ["first"])
        first.stop(release=False)  # a crash: the lock is left to expire
        assert wait_for(lambda: "second" in ticks, timeout=10)
        assert ticks == ["first", "second"] and second.is_leader
    finally:
        second.stop()


def test_the_scheduler_polls_each_connected_company_as_soon_as_it_starts(plugin_config, sandbox_url):
    """Not a whole CRM_QBO_POLL_SECONDS after start: a restart must not leave an hour without the safety net."""
    register_app(sandbox_url)
    app = create_app(crm_config({**plugin_config, **plugin_overrides(sandbox_url), "CRM_QBO_POLL_SECONDS": "3600"}))
    try:
        client = app.test_client()
        north, south, quiet, offline = (new_location(client, name)["id"] for name in ("North", "South", "Quiet", "Offline"))
        for location in (north, south, quiet):
            connect_directly(app, location, sandbox_url, create_company(sandbox_url, name=f"{location} Books"),
                             auto_sync=location != quiet)
        jobs = plugin_jobs(get_state(app), app.app_context)
        assert {job.name: job.every_seconds for job in jobs}["cdc-poll"] == 3600
        state = get_state(app)
        service = LeaderScheduler(state.redis, jobs)
        service.start()
        try:
            assert wait_for(lambda: service.runs["cdc-poll"] == 1, timeout=20)
        finally:
            service.stop()
        polled = sorted(job.args[0] for job in state.queue.jobs if job.func_name == POLL_CDC)
        assert polled == sorted([north, south])  # not the one with auto-sync off, nor the unconnected one
    finally:
        close(app)


def _env(plugin_config: dict) -> dict[str, str]:
    return {**os.environ, **plugin_config, "CRM_QBO_APP": "tests.support.plugin_app:create_app", "PYTHONPATH": str(ROOT)}


def test_scheduler_processes_elect_one_leader_and_fail_over(plugin_config, tmp_path):
    env = _env(plugin_config)
    logs = [tmp_path / "s1.log", tmp_path / "s2.log"]
    cmd = [sys.executable, "-m", "crm_qbo_plugin", "scheduler", "--lock-ttl", "2"]
    first = subprocess.Popen(cmd, env=env, stdout=logs[0].open("w"), stderr=subprocess.STDOUT)
    try:
        assert wait_for(lambda: "scheduler.leader leading=True" in logs[0].read_text(), timeout=20)
        second = subprocess.Popen(cmd, env=env, stdout=logs[1].open("w"), stderr=subprocess.STDOUT)
        try:
            assert wait_for(lambda: "scheduler started" in logs[1].read_text(), timeout=20)
            time.sleep(2.5)  # longer than the TTL: the live leader keeps renewing
            assert "leading=True" not in logs[1].read_text()
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=10)
            assert wait_for(lambda: "scheduler.leader leading=True" in logs[1].read_text(), timeout=10)
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(timeout=20) == 0
    finally:
        if first.poll() is None:
            first.kill()


# The scheduler command, with SIGTERM blocked on its main thread once that thread waits to be
# stopped: the kernel must then hand the signal to one of the scheduler's own threads, as it may
# (and in CI once did) on any multi-threaded process.
_SIGNAL_TO_ANOTHER_THREAD = """
import signal, threading
from crm_qbo_plugin.cli import main
real_wait = threading.Event.wait
def wait(self, timeout=None):
    if threading.current_thread() is threading.main_thread():
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    return real_wait(self, timeout)
threading.Event.wait = wait
main()
"""


def test_the_scheduler_stops_on_sigterm_whichever_thread_the_kernel_hands_it_to(plugin_config, tmp_path):
    log = tmp_path / "scheduler.log"
    cmd = [sys.executable, "-c", _SIGNAL_TO_ANOTHER_THREAD, "scheduler", "--lock-ttl", "2"]
    process = subprocess.Popen(cmd, env=_env(plugin_config), stdout=log.open("w"), stderr=subprocess.STDOUT)
    try:
        assert wait_for(lambda: "scheduler.leader leading=True" in log.read_text(), timeout=20)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
        assert "cli.stopping signal=15" in log.read_text()
    finally:
        if process.poll() is None:
            process.kill()


def test_the_worker_command_processes_queued_events(plugin_app, plugin_config):
    with plugin_app.app_context():
        QuickBooksPlugin().publish("loc-1", HostEvent(type=EventType.CONTACT_UPDATED, subject_id="c1", key="e1"))
    assert get_state(plugin_app).queue.count == 1
    done = subprocess.run(
        [sys.executable, "-m", "crm_qbo_plugin", "worker", "--burst"],
        env=_env(plugin_config), capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    with session(get_state(plugin_app).engine) as db:
        [row] = db.exec(select(OutboxEvent)).all()
    assert (row.status, row.last_error) == ("skipped", "not connected to QuickBooks")


def test_commands_that_need_the_host_app_say_how_to_name_it(plugin_config):
    env = {k: v for k, v in _env(plugin_config).items() if k != "CRM_QBO_APP"}
    done = subprocess.run([sys.executable, "-m", "crm_qbo_plugin", "worker", "--burst"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "--app module:factory" in done.stderr
