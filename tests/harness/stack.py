"""The product's real processes on loopback, each one killable, restartable and stoppable by pid.

`Stack` starts Redis (its own redis-server, restartable on the same port), the QBO sandbox (its own
process, webhooks delivered by its background thread), the Xero sandbox (the same, for the Xero
tenants: their organisations, the plugin's Xero app and a Xero user's app), the reference CRM with the plugin served by
waitress (`crm-qbo serve`), N `crm-qbo worker` processes and the scheduler. The database is a fresh
SQLite file, or a fresh PostgreSQL database under CRM_QBO_TEST_DATABASE_URL (scripts/pg-test-server).
Only processes this module started are ever signalled, each by its own pid.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import redis
import requests
import sqlalchemy as sa
from cryptography.fernet import Fernet

from reference_crm.demo import free_port, redis_answers

ROOT = Path(__file__).resolve().parents[2]
APP_PATH = "reference_crm.app:create_app"
CLIENT_ID = "soak-plugin-app"
USER_CLIENT_ID = "soak-qbo-user"  # what a QuickBooks user writes with (no webhook URL)
REDIRECT_PATH = "/integrations/quickbooks/callback"
WEBHOOK_PATH = "/integrations/quickbooks/webhooks"
XERO_CLIENT_ID = "soak-xero-app"
XERO_USER_CLIENT_ID = "soak-xero-user"  # what a Xero user writes with (no webhook URL)
XERO_REDIRECT_PATH = "/integrations/quickbooks/xero/callback"
XERO_WEBHOOK_PATH = "/integrations/quickbooks/xero/webhooks"
# The card's choices for a Xero tenant: the NZ organisation's Sales account and bank account; the
# workload's lines carry no tax.
XERO_BOOKS = {"revenue_account_id": "200", "payment_account_id": "090", "tax_mapping": {"none": "NONE"},
              "taxes_confirmed": True}


class HarnessError(RuntimeError):
    """A process did not start or a step could not run; the message says which."""


@dataclass
class Proc:
    """One managed process: how to start it again, its log, and whether it is SIGSTOPped."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = None
    stopped: bool = False
    starts: int = 0

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def start(self) -> None:
        self.log = self.log_path.open("ab")
        self.popen = subprocess.Popen(self.argv, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,  # noqa: S603
                                      stdin=subprocess.DEVNULL, cwd=str(ROOT))
        self.stopped = False
        self.starts += 1

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal(self, signum: int) -> None:
        if self.alive():
            os.kill(self.pid, signum)

    def kill(self) -> None:
        """SIGKILL (a crash): no clean-up of any kind runs in the process."""
        if self.popen is None:
            return
        if self.alive():
            if self.stopped:
                os.kill(self.pid, signal.SIGCONT)
            os.kill(self.pid, signal.SIGKILL)
        self.popen.wait(timeout=30)
        self.stopped = False
        if self.log:
            self.log.close()
            self.log = None

    def pause(self) -> None:
        self.signal(signal.SIGSTOP)
        self.stopped = True

    def resume(self) -> None:
        self.signal(signal.SIGCONT)
        self.stopped = False

    def terminate(self, timeout: float = 15) -> None:
        if self.popen is None:
            return
        if self.alive():
            if self.stopped:
                self.resume()
            self.popen.terminate()
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)
        if self.log:
            self.log.close()
            self.log = None


@dataclass
class Stack:
    workdir: Path
    database_url: str
    redis_port: int
    sandbox_port: int
    web_port: int
    xero_port: int
    env: dict[str, str] = field(default_factory=dict)
    procs: dict[str, Proc] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    _app: Any = None
    _engine: sa.engine.Engine | None = None

    # -- addresses ------------------------------------------------------------------------------
    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def sandbox_url(self) -> str:
        return f"http://127.0.0.1:{self.sandbox_port}"

    @property
    def xero_url(self) -> str:
        return f"http://127.0.0.1:{self.xero_port}"

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def engine(self) -> sa.engine.Engine:
        if self._engine is None:
            from crm_qbo_plugin.store.db import make_engine

            self._engine = make_engine(self.database_url)
        return self._engine

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url, socket_connect_timeout=2, socket_timeout=5)

    # -- processes ------------------------------------------------------------------------------
    def add(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Proc:
        logs = self.workdir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        proc = Proc(name, argv, env or self.env, logs / f"{name}.log")
        self.procs[name] = proc
        proc.start()
        return proc

    def plugin_argv(self, *command: str) -> list[str]:
        return [sys.executable, "-m", "crm_qbo_plugin", "--app", APP_PATH, *command]

    def workers(self) -> list[Proc]:
        return [p for n, p in sorted(self.procs.items()) if n.startswith("worker")]

    def schedulers(self) -> list[Proc]:
        return [p for n, p in sorted(self.procs.items()) if n.startswith("scheduler")]

    def start_redis(self) -> Proc:
        binary = shutil.which("redis-server")
        if binary is None:
            raise HarnessError("redis-server is not installed (apt-get install redis-server)")
        folder = self.workdir / "redis"
        folder.mkdir(exist_ok=True)
        proc = self.procs.get("redis") or self.add("redis", [
            binary, "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(folder)], dict(os.environ))
        if not proc.alive():
            proc.start()
        self.wait_for(lambda: redis_answers(self.redis_url), "redis", proc)
        return proc

    def start_sandbox(self) -> Proc:
        proc = self.add("sandbox", [sys.executable, "-m", "qbo_sandbox", "--host", "127.0.0.1",
                                    "--port", str(self.sandbox_port), "--quiet"])
        self.wait_for(lambda: _http_ok(f"{self.sandbox_url}/.well-known/openid_configuration"), "sandbox", proc)
        return proc

    def start_xero(self) -> Proc:
        proc = self.add("xero", [sys.executable, "-m", "xero_sandbox", "--host", "127.0.0.1",
                                 "--port", str(self.xero_port), "--quiet"])
        self.wait_for(lambda: _http_ok(f"{self.xero_url}/_sandbox/clock"), "xero", proc)
        return proc

    def start_web(self) -> Proc:
        proc = self.procs.get("web") or self.add("web", self.plugin_argv(
            "serve", "--host", "127.0.0.1", "--port", str(self.web_port), "--threads", "8"))
        if not proc.alive():
            proc.start()
        self.wait_for(lambda: _http_ok(f"{self.web_url}/login"), "web", proc)
        return proc

    def add_worker(self) -> Proc:
        index = len(self.workers())
        return self.add(f"worker-{index}", self.plugin_argv("worker"))

    def add_scheduler(self) -> Proc:
        index = len(self.schedulers())
        return self.add(f"scheduler-{index}", self.plugin_argv("scheduler", "--lock-ttl", "6"))

    def restart(self, proc: Proc) -> None:
        """Start a process again after it died (a supervisor's job in production)."""
        if proc.alive():
            return
        if proc.name == "redis":
            self.start_redis()
        elif proc.name == "web":
            self.start_web()
        else:
            proc.start()

    def wait_for(self, check: Any, what: str, proc: Proc, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if not proc.alive():
                raise HarnessError(f"{what} exited while starting; see {proc.log_path}")
            if time.monotonic() > deadline:
                raise HarnessError(f"{what} did not answer within {timeout:g}s; see {proc.log_path}")
            time.sleep(0.05)

    # -- the harness's own app (setup and checks; it runs no plugin work) ----------------------
    def app(self) -> Any:
        if self._app is None:
            from reference_crm.app import create_app

            self._app = create_app({k: v for k, v in self.env.items() if k.startswith(("CRM_QBO_", "REFERENCE_CRM_"))})
        return self._app

    def close(self) -> None:
        for proc in reversed(list(self.procs.values())):
            proc.terminate()
        if self._app is not None:
            from crm_qbo_plugin.state import get_state
            from reference_crm.state import crm_state

            crm_state(self._app).engine.dispose()
            get_state(self._app).engine.dispose()
            get_state(self._app).redis.close()
            self._app = None
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    # -- sandbox control ------------------------------------------------------------------------
    def sandbox_post(self, path: str, body: dict[str, Any], timeout: float = 30) -> Any:
        answer = requests.post(f"{self.sandbox_url}{path}", json=body, timeout=timeout)
        answer.raise_for_status()
        return answer.json() if answer.content else None

    def register_apps(self) -> None:
        self.sandbox_post("/_sandbox/apps", {
            "client_id": CLIENT_ID, "client_secret": self.secrets["client_secret"], "name": "crm-qbo soak",
            "redirect_uris": [self.web_url + REDIRECT_PATH], "verifier_token": self.secrets["verifier"],
            "webhook_url": self.web_url + WEBHOOK_PATH, "webhook_format": "cloudevents"})
        self.sandbox_post("/_sandbox/apps", {
            "client_id": USER_CLIENT_ID, "client_secret": secrets.token_urlsafe(16),
            "redirect_uris": ["http://127.0.0.1/unused"], "name": "QuickBooks user"})

    # -- Xero ------------------------------------------------------------------------------------
    def xero_post(self, path: str, body: dict[str, Any], timeout: float = 30) -> Any:
        answer = requests.post(f"{self.xero_url}{path}", json=body, timeout=timeout)
        answer.raise_for_status()
        return answer.json() if answer.content else None

    def register_xero_apps(self) -> None:
        self.xero_post("/_sandbox/apps", {
            "client_id": XERO_CLIENT_ID, "client_secret": self.secrets["xero_client_secret"], "name": "crm-qbo soak",
            "redirect_uris": [self.web_url + XERO_REDIRECT_PATH], "webhook_url": self.web_url + XERO_WEBHOOK_PATH,
            "webhook_key": self.secrets["xero_webhook_key"]})
        self.xero_post("/_sandbox/apps", {
            "client_id": XERO_USER_CLIENT_ID, "client_secret": secrets.token_urlsafe(16),
            "redirect_uris": ["http://127.0.0.1/unused"], "name": "Xero user"})

    def check_xero_webhooks(self) -> None:
        """Xero's intent-to-receive check against the CRM, so the sandbox sends it webhooks."""
        answer = self.xero_post(f"/_sandbox/apps/{XERO_CLIENT_ID}/intent-to-receive", {})
        if not answer.get("passed"):
            raise HarnessError(f"the CRM failed Xero's intent-to-receive check: {answer}")

    def new_xero_tenant(self, name: str) -> tuple[str, str, str]:
        """A NZD CRM location connected to a new NZ organisation, as the Xero callback would connect
        it; returns (location id, its API key, the organisation's tenant id)."""
        location, key = self._new_location(name, "NZD")
        org = str(self.xero_post("/_sandbox/organisations", {"name": f"{name} Books", "country": "NZ"})["tenant_id"])
        self.connect_xero(location, org)
        return location, key, org

    def connect_xero(self, tenant: str, org: str, *, reconnect: bool = False) -> None:
        """Store a Xero connection as the callback (`complete_xero_connect`) does after consent: tokens
        for the organisation, its facts read with them; a reconnect then does what the callback does
        after (`after_connect`: what was parked resumes, a poll reads what changed meanwhile)."""
        from crm_qbo_plugin.onboarding.lifecycle import after_connect
        from crm_qbo_plugin.onboarding.xero_connect import save_xero_connection
        from crm_qbo_plugin.state import get_state
        from crm_qbo_plugin.store.connections import store_settings
        from crm_qbo_plugin.xero import Tokens

        app = self.app()
        state = get_state(app)
        tokens = Tokens.from_token_response(self.xero_post("/_sandbox/connect", {
            "client_id": XERO_CLIENT_ID, "tenant_ids": [org]}))
        with app.app_context():
            now = datetime.now(UTC) - timedelta(seconds=0 if reconnect else 1)
            save_xero_connection(state, tenant, org, tokens, now=now)
            if reconnect:
                after_connect(state, tenant, now, same_company=True)
            else:
                store_settings(state.engine, tenant, {}, lambda _current: dict(XERO_BOOKS), now)

    def _new_location(self, name: str, currency: str) -> tuple[str, str]:
        answer = requests.post(f"{self.web_url}/api/locations", timeout=30,
                               headers={"Authorization": f"Bearer {self.secrets['admin_token']}"},
                               json={"name": name, "currency": currency,
                                     "user": {"email": f"owner-{uuid.uuid4().hex[:8]}@soak.example.com"}})
        if answer.status_code != 201:
            raise HarnessError(f"POST /api/locations answered {answer.status_code}: {answer.text[:200]}")
        return str(answer.json()["id"]), str(answer.json()["api_key"])

    def new_tenant(self, name: str, **settings: Any) -> tuple[str, str, str]:
        """A CRM location (through the admin API) connected to a new sandbox company, as the OAuth
        callback would connect it; returns (location id, its API key, realm id)."""
        location, key = self._new_location(name, "USD")
        realm = str(self.sandbox_post("/_sandbox/companies", {
            "name": f"{name} Books", "country": "US", "sales_tax_rate": 0})["realmId"])
        self.connect(location, realm, **settings)
        return location, key, realm

    def connect(self, tenant: str, realm: str, **settings: Any) -> None:
        from sqlmodel import select

        from crm_qbo_plugin.onboarding.company import company_facts
        from crm_qbo_plugin.onboarding.lifecycle import save_connection
        from crm_qbo_plugin.qbo import Tokens
        from crm_qbo_plugin.runtime.clients import client_with_token
        from crm_qbo_plugin.state import get_state
        from crm_qbo_plugin.store.db import session
        from crm_qbo_plugin.store.tables import Connection

        app = self.app()
        state = get_state(app)
        tokens = Tokens.from_token_response(self.sandbox_post("/_sandbox/tokens", {"realm_id": realm, "client_id": CLIENT_ID}))
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


    # -- disconnect and reconnect, as the card does (the harness's app runs the same code) ----
    def disconnect(self, tenant: str) -> None:
        """The card's "Disconnect QuickBooks": revoke at Intuit, forget the tokens, keep the links."""
        from crm_qbo_plugin.onboarding.lifecycle import unlink
        from crm_qbo_plugin.state import get_state

        app = self.app()
        with app.app_context():
            unlink(get_state(app), tenant)

    def reconnect(self, tenant: str, realm: str) -> None:
        """Connect `tenant` to the same company again as the OAuth callback does after Intuit's
        consent: new tokens stored with the links kept, parked rows resumed, the import run."""
        from sqlmodel import select

        from crm_qbo_plugin.onboarding.company import company_facts
        from crm_qbo_plugin.onboarding.lifecycle import after_connect, save_connection
        from crm_qbo_plugin.qbo import Tokens
        from crm_qbo_plugin.runtime.clients import client_with_token
        from crm_qbo_plugin.state import get_state
        from crm_qbo_plugin.store.db import session
        from crm_qbo_plugin.store.tables import Connection

        app = self.app()
        state = get_state(app)
        tokens = Tokens.from_token_response(self.sandbox_post("/_sandbox/tokens", {"realm_id": realm, "client_id": CLIENT_ID}))
        with app.app_context():
            with session(state.engine) as db:
                row = db.exec(select(Connection).where(Connection.tenant_id == tenant)).one()
                import_invoices = bool(row.settings.get("import_invoices"))
            with client_with_token(state, realm, tokens.access_token) as client:
                facts = company_facts(client.company_info(), client.preferences())
            now = datetime.now(UTC)
            save_connection(state, tenant, realm, tokens, facts, switching=False, import_invoices=import_invoices, now=now)
            after_connect(state, tenant, now, same_company=True)


def _http_ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code < 500
    except requests.RequestException:
        return False


def _fresh_database(base: str | None, folder: Path) -> tuple[str, Any]:
    """A fresh SQLite file, or a fresh database on the PostgreSQL server at `base`; returns (url,
    drop) where `drop()` removes it again."""
    if not base:
        return f"sqlite:///{folder / 'soak.db'}", lambda: None
    name = f"soak_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(base).set(database=name).render_as_string(hide_password=False)

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return url, drop


@contextmanager
def stack(workers: int = 3, schedulers: int = 1, database_url: str | None = None, keep: bool = False,
          workdir: Path | None = None) -> Iterator[Stack]:
    """Everything up and connected to nothing yet; stopped (each process by its pid) afterwards.

    `database_url` is an empty database to use; by default a fresh one is made (PostgreSQL when
    CRM_QBO_TEST_DATABASE_URL is set, else SQLite in the scratch folder)."""
    folder = workdir or Path(tempfile.mkdtemp(prefix="crm-qbo-soak-"))
    folder.mkdir(parents=True, exist_ok=True)
    drop: Any = lambda: None  # noqa: E731
    if database_url is None:
        database_url, drop = _fresh_database(os.environ.get("CRM_QBO_TEST_DATABASE_URL"), folder)
    st = Stack(folder, database_url, free_port(), free_port(), free_port(), free_port())
    try:
        st.secrets = {
            "client_secret": secrets.token_urlsafe(24), "verifier": secrets.token_urlsafe(24),
            "fernet": Fernet.generate_key().decode(), "secret_key": secrets.token_hex(32),
            "admin_token": secrets.token_urlsafe(24), "xero_client_secret": secrets.token_urlsafe(24),
            "xero_webhook_key": secrets.token_urlsafe(32),
        }
        st.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("CRM_QBO_", "REFERENCE_CRM_"))},
            "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1",
            "CRM_QBO_APP": APP_PATH,
            "CRM_QBO_DATABASE_URL": database_url,
            "CRM_QBO_REDIS_URL": st.redis_url,
            "CRM_QBO_CLIENT_ID": CLIENT_ID,
            "CRM_QBO_CLIENT_SECRET": st.secrets["client_secret"],
            "CRM_QBO_REDIRECT_URI": st.web_url + REDIRECT_PATH,
            "CRM_QBO_ENVIRONMENT": f"{st.sandbox_url}/.well-known/openid_configuration",
            "CRM_QBO_API_BASE_URL": st.sandbox_url,
            "CRM_QBO_WEBHOOK_VERIFIER_TOKEN": st.secrets["verifier"],
            "CRM_QBO_SECRET_KEYS": st.secrets["fernet"],
            "CRM_QBO_XERO_CLIENT_ID": XERO_CLIENT_ID,
            "CRM_QBO_XERO_CLIENT_SECRET": st.secrets["xero_client_secret"],
            "CRM_QBO_XERO_REDIRECT_URI": st.web_url + XERO_REDIRECT_PATH,
            "CRM_QBO_XERO_WEBHOOK_KEY": st.secrets["xero_webhook_key"],
            "CRM_QBO_XERO_BASE_URL": st.xero_url,
            "REFERENCE_CRM_SECRET_KEY": st.secrets["secret_key"],
            "REFERENCE_CRM_ADMIN_TOKEN": st.secrets["admin_token"],
        }
        from crm_qbo_plugin.store.migrate import upgrade

        upgrade(database_url)
        st.start_redis()
        st.start_sandbox()
        st.register_apps()
        st.start_xero()
        st.register_xero_apps()
        st.start_web()
        st.check_xero_webhooks()
        for _ in range(workers):
            st.add_worker()
        for _ in range(schedulers):
            st.add_scheduler()
        yield st
    finally:
        st.close()
        drop()
        if not keep and workdir is None:
            shutil.rmtree(folder, ignore_errors=True)
