"""The benchmark's moving parts: Redis, the database, the sandbox process, plugin processes.

Everything runs on loopback in a scratch folder and is stopped by `Stack.close()`; only processes
this module started are stopped, each by its own pid.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import requests
from cryptography.fernet import Fernet

from reference_crm.demo import free_port, redis_answers

ROOT = Path(__file__).resolve().parents[1]
APP_PATH = "bench.hostapp:create_app"
CLIENT_ID = "bench-client"
CLIENT_SECRET = "bench-client-secret-0123456789"
VERIFIER = "bench-verifier-token-0123456789"
REDIRECT_URI = "http://127.0.0.1:5000/integrations/quickbooks/callback"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class BenchError(RuntimeError):
    """The benchmark could not run a step; the message says which and why."""


# -- /proc readings ---------------------------------------------------------------------------------
def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process (its own threads; it forks no children)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set (VmHWM) in MiB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


@dataclass
class Proc:
    """A child process with its log; `cpu_mark` is the CPU reading when measurement started."""

    name: str
    popen: subprocess.Popen[bytes]
    log: IO[bytes]
    cpu_mark: float = 0.0

    @property
    def pid(self) -> int:
        return self.popen.pid

    def mark(self) -> None:
        self.cpu_mark = cpu_seconds(self.pid)

    def cpu_since_mark(self) -> float:
        return cpu_seconds(self.pid) - self.cpu_mark

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=5)
        self.log.close()


@dataclass
class Sandbox:
    proc: Proc
    url: str
    realms: list[str]
    seed_seconds: float
    latency_ms: float
    clock_speed: float

    def stats(self, reset: bool = False) -> dict[str, Any]:
        answer = requests.get(f"{self.url}/_sandbox/stats", params={"reset": "1"} if reset else None, timeout=30)
        answer.raise_for_status()
        data: dict[str, Any] = answer.json()
        return data

    def token(self, realm: str, client_id: str = CLIENT_ID) -> dict[str, Any]:
        answer = requests.post(f"{self.url}/_sandbox/tokens", json={"realm_id": realm, "client_id": client_id}, timeout=30)
        answer.raise_for_status()
        data: dict[str, Any] = answer.json()
        return data

    def v3(self, realm: str) -> str:
        return f"{self.url}/v3/company/{realm}"

    def set_limits(self, realm: str, **limits: Any) -> None:
        answer = requests.patch(f"{self.url}/_sandbox/companies/{realm}", json={"limits": limits}, timeout=30)
        answer.raise_for_status()


@dataclass
class Stack:
    """One benchmark environment: scratch folder, Redis, database, env for plugin processes."""

    workdir: Path
    redis_proc: Proc | None = None
    redis_url: str = ""
    database_url: str = ""
    env: dict[str, str] = field(default_factory=dict)
    procs: list[Proc] = field(default_factory=list)
    sandbox: Sandbox | None = None
    _app: Any = None

    # -- processes ------------------------------------------------------------------------------
    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Proc:
        logs = self.workdir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        log = (logs / f"{name}.log").open("ab")
        popen = subprocess.Popen(argv, env=env or self.env, stdout=log, stderr=subprocess.STDOUT,  # noqa: S603
                                 stdin=subprocess.DEVNULL, cwd=str(ROOT))
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def stop(self, proc: Proc) -> None:
        proc.stop()
        if proc in self.procs:
            self.procs.remove(proc)

    def close(self) -> None:
        if self._app is not None:
            from crm_qbo_plugin.state import get_state
            from reference_crm.state import crm_state

            crm_state(self._app).engine.dispose()
            get_state(self._app).engine.dispose()
            get_state(self._app).redis.close()
            self._app = None
        for proc in reversed(list(self.procs)):
            proc.stop()
        self.procs.clear()
        if self.redis_proc is not None:
            self.redis_proc.stop()
            self.redis_proc = None

    # -- sandbox --------------------------------------------------------------------------------
    def start_sandbox(self, companies: list[dict[str, Any]], latency_ms: float = 0.0,
                      clock_speed: float = 1.0, timeout: float = 600.0) -> Sandbox:
        if self.sandbox is not None:
            self.stop(self.sandbox.proc)
            self.sandbox = None
        spec = self.workdir / "sandbox-spec.json"
        spec.write_text(json.dumps({"companies": companies}), encoding="utf-8")
        logs = self.workdir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        err = (logs / "sandbox.log").open("ab")
        popen = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "bench.sandbox_server", "--spec", str(spec), "--latency-ms", str(latency_ms),
             "--clock-speed", str(clock_speed)],
            stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL, cwd=str(ROOT), env=self.env)
        assert popen.stdout is not None
        deadline = time.monotonic() + timeout
        line = b""
        while not line and time.monotonic() < deadline and popen.poll() is None:
            line = popen.stdout.readline()
        if not line:
            popen.kill()
            raise BenchError(f"the sandbox did not start; see {logs / 'sandbox.log'}")
        info = json.loads(line)
        proc = Proc("sandbox", popen, err)
        self.procs.append(proc)
        self.sandbox = Sandbox(proc, info["url"], [str(r) for r in info["realms"]], float(info["seed_seconds"]),
                               latency_ms, clock_speed)
        requests.post(f"{self.sandbox.url}/_sandbox/apps", json={
            "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "redirect_uris": [REDIRECT_URI],
            "verifier_token": VERIFIER, "name": "crm-qbo bench"}, timeout=30).raise_for_status()
        self.env.update({
            "CRM_QBO_ENVIRONMENT": f"{self.sandbox.url}/.well-known/openid_configuration",
            "CRM_QBO_API_BASE_URL": self.sandbox.url,
            "BENCH_CLOCK_SPEED": str(clock_speed),
        })
        if self._app is not None:  # the harness app must follow the new sandbox
            self.close_app()
        return self.sandbox

    # -- the harness's own app (setup, publishing, checks; its CPU is not counted) ---------------
    def app(self) -> Any:
        if self._app is None:
            from bench.hostapp import create_app

            self._app = create_app({k: v for k, v in self.env.items()
                                    if k.startswith(("CRM_QBO_", "REFERENCE_CRM_", "BENCH_"))})
        return self._app

    def close_app(self) -> None:
        if self._app is not None:
            from crm_qbo_plugin.state import get_state
            from reference_crm.state import crm_state

            crm_state(self._app).engine.dispose()
            get_state(self._app).engine.dispose()
            get_state(self._app).redis.close()
            self._app = None

    def plugin_argv(self, *command: str) -> list[str]:
        return [sys.executable, "-m", "crm_qbo_plugin", "--app", APP_PATH, *command]

    def start_workers(self, count: int, name: str = "worker", hold: bool = False) -> list[Proc]:
        """`count` `crm-qbo worker` processes, returned once each has registered with rq (idle).

        `hold`: for work queued before the workers start — rq's workers are suspended until every
        one is up and its CPU marked, so no job is done before the mark (a small run's jobs would
        otherwise all be done while the workers start, and their CPU be missed); returns once the
        first worker has left rq's suspension poll (at most a second), when the clock may start."""
        from rq import Worker
        from rq.suspension import resume, suspend

        from crm_qbo_plugin.state import get_state

        state = get_state(self.app())
        before = Worker.count(connection=state.redis)
        if hold:
            suspend(state.redis)
        procs = [self.spawn(f"{name}-{i}", self.plugin_argv("worker")) for i in range(count)]
        deadline = time.monotonic() + 120

        def suspended() -> int:
            return sum(1 for w in Worker.all(connection=state.redis) if w.get_state() == "suspended")

        while Worker.count(connection=state.redis) < before + count or (hold and suspended() < count):
            for proc in procs:
                if not proc.alive():
                    raise BenchError(f"{proc.name} exited while starting; see {self.workdir / 'logs'}")
            if time.monotonic() > deadline:
                raise BenchError("the workers did not register with rq within 120 s")
            time.sleep(0.05)
        time.sleep(WORKER_SETTLE_S)
        for proc in procs:
            proc.mark()
        if hold:
            resume(state.redis)
            deadline = time.monotonic() + 5
            while suspended() == count and time.monotonic() < deadline:
                time.sleep(0.01)
        return procs


# start_workers waits this long after the last worker registered (before its CPU mark); a workload
# whose jobs are queued already holds the workers (hold=True) so they begin after the mark.
WORKER_SETTLE_S = 0.2


@contextmanager
def stack(workdir: Path | None = None, keep: bool = False, database_url: str | None = None,
          redis_url: str | None = None) -> Iterator[Stack]:
    """A scratch folder with a fresh Redis (own process, own port) and SQLite database, unless an
    (empty) database or a Redis is given, as the tests do."""
    made = workdir is None
    folder = Path(tempfile.mkdtemp(prefix="crm-qbo-bench-")) if workdir is None else workdir
    folder.mkdir(parents=True, exist_ok=True)
    result = Stack(workdir=folder)
    try:
        result.database_url = database_url or f"sqlite:///{folder / 'bench.db'}"
        if redis_url:
            result.redis_url = redis_url
        else:
            _start_redis(result, folder)
        from crm_qbo_plugin.store.migrate import upgrade

        upgrade(result.database_url)
        result.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("CRM_QBO_", "REFERENCE_CRM_"))},
            "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1",
            "CRM_QBO_DATABASE_URL": result.database_url,
            "CRM_QBO_REDIS_URL": result.redis_url,
            "CRM_QBO_CLIENT_ID": CLIENT_ID,
            "CRM_QBO_CLIENT_SECRET": CLIENT_SECRET,
            "CRM_QBO_REDIRECT_URI": REDIRECT_URI,
            "CRM_QBO_ENVIRONMENT": "sandbox",
            "CRM_QBO_WEBHOOK_VERIFIER_TOKEN": VERIFIER,
            "CRM_QBO_SECRET_KEYS": Fernet.generate_key().decode(),
            "REFERENCE_CRM_SECRET_KEY": secrets.token_hex(32),
        }
        yield result
    finally:
        result.close()
        if made and not keep:
            shutil.rmtree(folder, ignore_errors=True)


def _start_redis(result: Stack, folder: Path) -> None:
    binary = shutil.which("redis-server")
    if binary is None:
        raise BenchError("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    (folder / "redis").mkdir(exist_ok=True)
    result.redis_proc = result.spawn("redis", [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                               "--appendonly", "no", "--dir", str(folder / "redis")], dict(os.environ))
    result.procs.remove(result.redis_proc)
    result.redis_url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while not redis_answers(result.redis_url):
        if time.monotonic() > deadline:
            raise BenchError("redis-server did not start")
        time.sleep(0.05)


# -- tenants ------------------------------------------------------------------------------------------
def new_location(st: Stack, name: str) -> str:
    """A CRM location (the plugin's tenant) with one login; returns its id."""
    from reference_crm import locations
    from reference_crm.db import session
    from reference_crm.state import crm_state

    state = crm_state(st.app())
    with st.app().app_context(), session(state.engine) as db:
        location, _user, _key, _generated = locations.create_location(
            db, name, "USD", {"email": f"owner-{secrets.token_hex(4)}@bench.example.com", "name": name,
                              "password": secrets.token_urlsafe(12)})
        db.commit()
        return location.id


def connect(st: Stack, tenant: str, realm: str, **settings: Any) -> None:
    """Connect `tenant` to `realm` as the OAuth callback would (no browser), dated a second ago."""
    from sqlmodel import select

    from crm_qbo_plugin.onboarding.company import company_facts
    from crm_qbo_plugin.onboarding.lifecycle import save_connection
    from crm_qbo_plugin.qbo import Tokens
    from crm_qbo_plugin.runtime.clients import client_with_token
    from crm_qbo_plugin.state import get_state
    from crm_qbo_plugin.store.db import session
    from crm_qbo_plugin.store.tables import Connection

    assert st.sandbox is not None
    app = st.app()
    state = get_state(app)
    tokens = Tokens.from_token_response(st.sandbox.token(realm))
    with app.app_context():
        with client_with_token(state, realm, tokens.access_token) as client:
            facts = company_facts(client.company_info(), client.preferences())
        save_connection(state, tenant, realm, tokens, facts, switching=False,
                        import_invoices=bool(settings.pop("import_invoices", False)),
                        now=datetime.now(UTC) - timedelta(seconds=1))
        with session(state.engine) as db:
            row = db.exec(select(Connection).where(Connection.tenant_id == tenant)).one()
            row.settings = {**row.settings, "revenue_account_id": "1", "taxes_confirmed": True, **settings}
            db.add(row)
            db.commit()
