"""``crm-demo`` (``python -m reference_crm``, ``make demo``): the whole product on loopback — Redis, the QuickBooks sandbox, the
Xero sandbox, the reference CRM with the plugin (waitress), one worker and the scheduler — with a
seeded sandbox company, a seeded Xero organisation (``demo_xero.py``) and two CRM locations to sign
in to: one for QuickBooks, one whose books are meant for Xero. Ctrl-C (SIGINT) or SIGTERM stops
everything it started.

Each run starts fresh: the sandboxes keep their books in memory, so the CRM's database in the data
folder (default ``.demo/``) is recreated to match. Ports and folder can be changed with
REFERENCE_CRM_DEMO_PORT (5000), REFERENCE_CRM_DEMO_SANDBOX_PORT (8765), REFERENCE_CRM_DEMO_XERO_PORT
(8766) and REFERENCE_CRM_DEMO_DIR.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import click
import redis
import requests
from cryptography.fernet import Fernet

from reference_crm.demo_xero import (
    XERO_BANK_ACCOUNT,
    XERO_CLIENT_ID,
    XERO_CURRENCY,
    XERO_ORG,
    XeroDemo,
    XeroSeedFailed,
    check_webhooks,
    seed_xero,
)

APP_PATH = "reference_crm.app:create_app"
DEMO_CLIENT_ID = "reference-crm-demo"
SEED_CLIENT_ID = "reference-crm-demo-seeder"  # seeds the company; has no webhook URL
LOGIN_EMAIL = "demo@example.com"
XERO_LOGIN_EMAIL = "xero-demo@example.com"  # the second location's owner (same password)
SANDBOX_COMPANY = "Sandbox Company US"


class DemoError(RuntimeError):
    """The demo cannot start; the message says what to do."""


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log: IO[bytes] | None = None


@dataclass
class Demo:
    port: int
    sandbox_port: int
    data_dir: Path
    xero_port: int = 8766
    echo: Callable[[str], None] = click.echo
    children: list[Child] = field(default_factory=list)

    @property
    def crm_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def sandbox_url(self) -> str:
        return f"http://127.0.0.1:{self.sandbox_port}"

    @property
    def xero_url(self) -> str:
        return f"http://127.0.0.1:{self.xero_port}"

    # -- processes ----------------------------------------------------------------------------
    def start(self, name: str, argv: list[str], env: Mapping[str, str]) -> Child:
        logs = self.data_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        log = (logs / f"{name}.log").open("ab")
        # A session of its own: a terminal's Ctrl-C reaches only the demo, which stops the
        # children in order instead of all of them dying at once.
        process = subprocess.Popen(argv, env=dict(env), stdout=log, stderr=subprocess.STDOUT,  # noqa: S603
                                   stdin=subprocess.DEVNULL, start_new_session=True)
        child = Child(name, process, log)
        self.children.append(child)
        return child

    def stop_all(self) -> None:
        for child in reversed(self.children):
            if child.process.poll() is None:
                child.process.terminate()
        deadline = time.monotonic() + 15
        for child in reversed(self.children):
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait(timeout=5)
            if child.log:
                child.log.close()
        self.children.clear()

    def check_children(self) -> Child | None:
        return next((c for c in self.children if c.process.poll() is not None), None)


def run_demo(environ: Mapping[str, str] | None = None) -> int:
    environ = os.environ if environ is None else environ
    demo = Demo(
        port=int(environ.get("REFERENCE_CRM_DEMO_PORT", "5000")),
        sandbox_port=int(environ.get("REFERENCE_CRM_DEMO_SANDBOX_PORT", "8765")),
        data_dir=Path(environ.get("REFERENCE_CRM_DEMO_DIR", ".demo")).resolve(),
        xero_port=int(environ.get("REFERENCE_CRM_DEMO_XERO_PORT", "8766")),
    )
    stop = _stop_flag()
    try:
        banner = _boot(demo, environ, stop)
        if banner is None:  # interrupted while starting
            return 0
        demo.echo(banner)
        while not stop["set"]:
            crashed = demo.check_children()
            if crashed is not None:
                demo.echo(f"error: the {crashed.name} process exited (code {crashed.process.returncode}); "
                          f"see {demo.data_dir / 'logs' / (crashed.name + '.log')}. Stopping the demo.")
                return 1
            time.sleep(0.2)
        demo.echo("stopping the demo …")
        return 0
    except DemoError as exc:
        demo.echo(f"error: {exc}")
        return 1
    finally:
        demo.stop_all()
        demo.echo("demo stopped; every process it started has exited")


def _stop_flag() -> dict[str, bool]:
    flag = {"set": False}

    def _handle(_signum: int, _frame: Any) -> None:
        flag["set"] = True

    signal.signal(signal.SIGINT, _handle)
    signal.signal(signal.SIGTERM, _handle)
    return flag


def _boot(demo: Demo, environ: Mapping[str, str], stop: Mapping[str, bool]) -> str | None:
    for port, what, variable in ((demo.port, "CRM", "REFERENCE_CRM_DEMO_PORT"),
                                 (demo.sandbox_port, "sandbox", "REFERENCE_CRM_DEMO_SANDBOX_PORT"),
                                 (demo.xero_port, "Xero sandbox", "REFERENCE_CRM_DEMO_XERO_PORT")):
        if not _port_free(port):
            raise DemoError(f"port {port} (the {what}) is in use: stop what uses it or set {variable}")
    _fresh_data_dir(demo.data_dir)
    database_url = f"sqlite:///{demo.data_dir / 'crm.db'}"
    secrets_ = {
        "client_secret": secrets.token_urlsafe(24), "verifier": secrets.token_urlsafe(24),
        "fernet": Fernet.generate_key().decode(), "secret_key": secrets.token_hex(32),
        "admin_token": secrets.token_urlsafe(24), "password": secrets.token_urlsafe(9),
    }
    redirect_uri = f"{demo.crm_url}/integrations/quickbooks/callback"
    demo.echo(f"starting the Xero sandbox on {demo.xero_url} …")
    demo.start("xero", [sys.executable, "-m", "xero_sandbox", "--host", "127.0.0.1",
                        "--port", str(demo.xero_port), "--quiet"], environ)
    demo.echo("starting Redis …")
    redis_url = _redis(demo, environ)
    env = {
        **environ,
        "CRM_QBO_APP": APP_PATH,
        "CRM_QBO_DATABASE_URL": database_url,
        "CRM_QBO_REDIS_URL": redis_url,
        "CRM_QBO_CLIENT_ID": DEMO_CLIENT_ID,
        "CRM_QBO_CLIENT_SECRET": secrets_["client_secret"],
        "CRM_QBO_REDIRECT_URI": redirect_uri,
        "CRM_QBO_ENVIRONMENT": f"{demo.sandbox_url}/.well-known/openid_configuration",
        "CRM_QBO_API_BASE_URL": demo.sandbox_url,
        "CRM_QBO_WEBHOOK_VERIFIER_TOKEN": secrets_["verifier"],
        "CRM_QBO_SECRET_KEYS": secrets_["fernet"],
        "CRM_QBO_XERO_CLIENT_ID": XERO_CLIENT_ID,
        "CRM_QBO_XERO_REDIRECT_URI": f"{demo.crm_url}/integrations/quickbooks/xero/callback",
        "CRM_QBO_XERO_BASE_URL": demo.xero_url,
        "REFERENCE_CRM_DEMO": "1",
        "REFERENCE_CRM_SECRET_KEY": secrets_["secret_key"],
        "REFERENCE_CRM_ADMIN_TOKEN": secrets_["admin_token"],
        "PYTHONUNBUFFERED": "1",
    }
    demo.echo(f"starting the QuickBooks sandbox on {demo.sandbox_url} …")
    demo.start("sandbox", [sys.executable, "-m", "qbo_sandbox", "--host", "127.0.0.1",
                           "--port", str(demo.sandbox_port), "--quiet"], env)
    _wait_http(demo, f"{demo.sandbox_url}/.well-known/openid_configuration", "sandbox", stop)
    if stop["set"]:
        return None
    realm, company = _seed_sandbox(demo, secrets_, redirect_uri)
    _wait_http(demo, f"{demo.xero_url}/_sandbox/clock", "Xero sandbox", stop)
    if stop["set"]:
        return None
    demo.echo("seeding the Xero organisation …")
    xero = _seeded_xero(demo, env)
    env.update(CRM_QBO_XERO_CLIENT_SECRET=xero.client_secret, CRM_QBO_XERO_WEBHOOK_KEY=xero.webhook_key)

    demo.echo("creating the database …")
    from crm_qbo_plugin.store.migrate import upgrade

    upgrade(database_url)
    location_id, api_key, xero_location_id = _seed_crm(env, secrets_["password"])

    plugin = [sys.executable, "-m", "crm_qbo_plugin", "--app", APP_PATH]
    demo.echo(f"starting the CRM on {demo.crm_url}, a worker and the scheduler …")
    demo.start("web", [*plugin, "serve", "--host", "127.0.0.1", "--port", str(demo.port)], env)
    demo.start("worker", [*plugin, "worker"], env)
    demo.start("scheduler", [*plugin, "scheduler"], env)
    _wait_http(demo, f"{demo.crm_url}/login", "CRM", stop)
    if stop["set"]:
        return None
    try:
        check_webhooks(demo.xero_url)
    except XeroSeedFailed as exc:
        raise DemoError(str(exc)) from None
    pids = ", ".join(f"{c.name} {c.process.pid}" for c in demo.children)
    return "\n".join([
        "",
        "Reference CRM with the QuickBooks plugin is running.",
        f"  CRM:              {demo.crm_url}/",
        f"  Sign in:          {LOGIN_EMAIL} / {secrets_['password']}",
        f"  QuickBooks card:  {demo.crm_url}/integrations/quickbooks/  (Settings → Integrations → QuickBooks)",
        f"  Sandbox QBO:      {demo.sandbox_url}/  company \"{company}\" (realm {realm})",
        f"  Xero location:    sign in as {XERO_LOGIN_EMAIL} (same password), location {xero_location_id}, "
        f"card \"Connect to Xero instead\"",
        f"  Sandbox Xero:     {demo.xero_url}  organisation \"{XERO_ORG}\" (tenant {xero.tenant_id})",
        f"  CRM API:          {demo.crm_url}/api/openapi.json  (location {location_id}, key {api_key})",
        f"  Admin token:      {secrets_['admin_token']}  (POST /api/locations)",
        f"  Redis:            {redis_url}",
        f"  Data and logs:    {demo.data_dir}",
        f"  Processes:        {pids}",
        "Press Ctrl-C to stop.",
    ])


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the demo, the benchmarks and the test harness use it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _fresh_data_dir(data_dir: Path) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    for name in ("crm.db", "crm.db-wal", "crm.db-shm"):
        (data_dir / name).unlink(missing_ok=True)
    shutil.rmtree(data_dir / "logs", ignore_errors=True)
    shutil.rmtree(data_dir / "redis", ignore_errors=True)


def _redis(demo: Demo, environ: Mapping[str, str]) -> str:
    """CRM_QBO_REDIS_URL if given, else a Redis already on 127.0.0.1:6379, else our own."""
    for url in (environ.get("CRM_QBO_REDIS_URL"), "redis://127.0.0.1:6379/0"):
        if url and redis_answers(url):
            return url
        if url and url == environ.get("CRM_QBO_REDIS_URL"):
            raise DemoError(f"CRM_QBO_REDIS_URL is set but Redis does not answer there ({url})")
    binary = shutil.which("redis-server") or _install_redis(demo)
    port = free_port()
    workdir = demo.data_dir / "redis"
    workdir.mkdir(parents=True, exist_ok=True)
    demo.start("redis", [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                         "--dir", str(workdir), "--daemonize", "no"], os.environ)
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while not redis_answers(url):
        if time.monotonic() > deadline or demo.children[-1].process.poll() is not None:
            raise DemoError(f"redis-server did not start; see {demo.data_dir / 'logs' / 'redis.log'}")
        time.sleep(0.05)
    return url


def redis_answers(url: str) -> bool:
    """Whether a Redis answers PING at `url` within half a second."""
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def _install_redis(demo: Demo) -> str:
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise DemoError("redis-server is not installed. Install it (Debian/Ubuntu: sudo apt-get install -y "
                        "redis-server), or point CRM_QBO_REDIS_URL at a running Redis, then run the demo again")
    demo.echo("redis-server is missing; installing it with apt-get …")
    done = subprocess.run(["apt-get", "install", "-y", "redis-server"], check=False)  # noqa: S607
    binary = shutil.which("redis-server")
    if done.returncode != 0 or binary is None:
        raise DemoError("apt-get could not install redis-server; install it by hand and run the demo again")
    return binary


def _wait_http(demo: Demo, url: str, what: str, stop: Mapping[str, bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not stop["set"]:
        try:
            if requests.get(url, timeout=2).status_code < 500:
                return
        except requests.RequestException:
            pass
        crashed = demo.check_children()
        if crashed is not None:
            raise DemoError(f"the {crashed.name} process exited while starting; see "
                            f"{demo.data_dir / 'logs' / (crashed.name + '.log')}")
        if time.monotonic() > deadline:
            raise DemoError(f"the {what} did not answer at {url} within {timeout:g}s")
        time.sleep(0.1)


# -- seeding --------------------------------------------------------------------------------------
def _seed_sandbox(demo: Demo, secrets_: Mapping[str, str], redirect_uri: str) -> tuple[str, str]:
    """Register the CRM's app, create a US company and fill it through the sandbox's REST API."""
    base = demo.sandbox_url
    demo.echo("seeding the sandbox company …")
    _post(f"{base}/_sandbox/apps", {
        "client_id": DEMO_CLIENT_ID, "client_secret": secrets_["client_secret"], "name": "Reference CRM (demo)",
        "redirect_uris": [redirect_uri], "verifier_token": secrets_["verifier"],
        "webhook_url": f"{demo.crm_url}/integrations/quickbooks/webhooks",
    })
    _post(f"{base}/_sandbox/apps", {"client_id": SEED_CLIENT_ID, "client_secret": secrets.token_urlsafe(16),
                                    "redirect_uris": ["http://127.0.0.1/unused"], "name": "Demo seeder"})
    realm = str(_post(f"{base}/_sandbox/companies", {"name": SANDBOX_COMPANY, "country": "US", "sales_tax_rate": 8})["realmId"])
    token = _post(f"{base}/_sandbox/tokens", {"realm_id": realm, "client_id": SEED_CLIENT_ID})["access_token"]
    qbo = _Qbo(base, realm, token)
    customers = [
        qbo.create("customer", {"DisplayName": name, "GivenName": given, "FamilyName": family, "CompanyName": company,
                                "PrimaryEmailAddr": {"Address": email}, "PrimaryPhone": {"FreeFormNumber": phone}})
        for name, given, family, company, email, phone in (
            ("Amy's Bird Sanctuary", "Amy", "Lauterbach", "Amy's Bird Sanctuary", "birds@example.com", "(650) 555-3311"),
            ("Bill's Windsurf Shop", "Bill", "Lucchini", "Bill's Windsurf Shop", "surf@example.com", "(415) 444-6538"),
            ("Cool Cars", "Grace", "Pariente", "Cool Cars", "cool_cars@example.com", "(415) 888-8888"),
        )
    ]
    items = [
        qbo.create("item", {"Name": name, "Sku": sku, "Type": "Service", "UnitPrice": price, "Taxable": taxable,
                            "IncomeAccountRef": {"value": "2"}})
        for name, sku, price, taxable in (("Gardening", "GARD-1", "35", True), ("Pest Control", "PEST-1", "45.5", False))
    ]
    for customer, lines in ((customers[0], [(items[0], "3"), (items[1], "1")]), (customers[1], [(items[0], "10")]),
                            (customers[2], [(items[1], "2")])):
        qbo.create("invoice", {
            "CustomerRef": {"value": customer["Id"]},
            "TxnTaxDetail": {"TxnTaxCodeRef": {"value": "2"}},
            "Line": [{"DetailType": "SalesItemLineDetail",
                      "Amount": str(_amount(item["UnitPrice"], qty)),
                      "SalesItemLineDetail": {"ItemRef": {"value": item["Id"]}, "Qty": qty,
                                              "UnitPrice": str(item["UnitPrice"]),
                                              "TaxCodeRef": {"value": "TAX" if item.get("Taxable") else "NON"}}}
                     for item, qty in lines],
        })
    return realm, SANDBOX_COMPANY


def _seeded_xero(demo: Demo, env: Mapping[str, str]) -> XeroDemo:
    try:
        return seed_xero(demo.xero_url, env["CRM_QBO_XERO_REDIRECT_URI"],
                         f"{demo.crm_url}/integrations/quickbooks/xero/webhooks")
    except XeroSeedFailed as exc:
        raise DemoError(str(exc)) from None


def _amount(price: Any, qty: str) -> Decimal:
    return (Decimal(str(price)) * Decimal(qty)).quantize(Decimal("0.01"))


@dataclass
class _Qbo:
    base: str
    realm: str
    token: str

    def create(self, entity: str, body: dict[str, Any]) -> dict[str, Any]:
        answer = requests.post(f"{self.base}/v3/company/{self.realm}/{entity}?minorversion=75", json=body,
                               headers={"Authorization": f"Bearer {self.token}", "Accept": "application/json"},
                               timeout=10)
        if answer.status_code != 200:
            raise DemoError(f"seeding the sandbox failed ({entity}: HTTP {answer.status_code} {answer.text[:300]})")
        created: dict[str, Any] = answer.json()[entity.capitalize()]
        return created


def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = requests.post(url, json=body, timeout=10)
    if answer.status_code not in (200, 201):
        raise DemoError(f"the sandbox refused {url} (HTTP {answer.status_code} {answer.text[:300]})")
    data: dict[str, Any] = answer.json()
    return data


def _seed_crm(env: Mapping[str, str], password: str) -> tuple[str, str, str]:
    """A location with the demo login, a sales tax rate and one contact of its own; a second one
    (NZD, 15% GST) for Xero, whose card already names the bank account Xero payments go to — the
    card has no choice for it yet (README, "What works with Xero today")."""
    from crm_qbo_plugin.state import get_state
    from crm_qbo_plugin.store.connections import store_settings
    from crm_qbo_plugin.store.types import utcnow
    from reference_crm import contacts, locations
    from reference_crm.app import create_app
    from reference_crm.db import session
    from reference_crm.state import crm_state

    app = create_app({k: v for k, v in env.items() if k.startswith(("CRM_QBO_", "REFERENCE_CRM_"))})
    state = crm_state(app)
    plugin = get_state(app)
    try:
        with app.app_context(), session(state.engine) as db:
            location, _user, key, _generated = locations.create_location(
                db, "Demo Studio", "USD", {"email": LOGIN_EMAIL, "name": "Demo Owner", "password": password},
                [{"name": "Sales tax", "rate_percent": Decimal("8")}])
            _row, event = contacts.create_contact(db, location.id, {
                "first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com", "phone": "+1 555 0100",
                "company": "Analytical Engines"})
            state.commit(db, location.id, [event])
            xero_location, _user, _key, _generated = locations.create_location(
                db, "Demo Studio NZ", XERO_CURRENCY,
                {"email": XERO_LOGIN_EMAIL, "name": "Demo Owner (Xero)", "password": password},
                [{"name": "GST", "rate_percent": Decimal("15")}])
            _row, event = contacts.create_contact(db, xero_location.id, {
                "first_name": "Kate", "last_name": "Sheppard", "email": "kate@example.com", "phone": "+64 21 555 0199",
                "company": "Suffrage Gardens"})
            state.commit(db, xero_location.id, [event])
        store_settings(plugin.engine, xero_location.id, plugin.manifest.defaults(),
                       lambda _current: {"payment_account_id": XERO_BANK_ACCOUNT}, utcnow())
        return location.id, key, xero_location.id
    finally:
        state.engine.dispose()
        plugin.engine.dispose()
        plugin.redis.close()
