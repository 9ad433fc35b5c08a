"""The Xero side of the benchmark: `python -m xero_sandbox` in its own process, organisations made
through its control API, CRM locations connected to them as the connect flow would.

The sandbox keeps Xero's limits per organisation (5 in flight, 60 a minute, 5,000 a day); the
harness's own calls (seeding, checks) go to organisations whose limits it turns off first and on
again before the plugin starts, so only the plugin's calls count against them.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from bench.infra import ROOT, BenchError, Proc, Stack

XERO_CLIENT_ID = "BENCHXEROCLIENT"
XERO_CLIENT_SECRET = "bench-xero-client-secret-0123456789"
XERO_WEBHOOK_KEY = "bench-xero-webhook-key-0123456789abcdef"
XERO_REDIRECT_URI = "http://127.0.0.1:5000/integrations/quickbooks/xero/callback"
BOOKS = {"revenue_account_id": "200", "payment_account_id": "090", "tax_mapping": {"none": "NONE"}}
SCOPE = ("openid profile email offline_access accounting.transactions accounting.contacts "
         "accounting.settings")


@dataclass
class XeroSandbox:
    proc: Proc
    url: str
    latency_ms: float
    clock_speed: float

    @property
    def api(self) -> str:
        return f"{self.url}/api.xro/2.0"

    def control(self, verb: str, endpoint: str, body: dict[str, Any] | None = None,
                params: dict[str, str] | None = None) -> Any:
        answer = requests.request(verb, f"{self.url}/_sandbox/{endpoint}", json=body, params=params, timeout=60)
        if answer.status_code >= 300:
            raise BenchError(f"xero_sandbox {verb} {endpoint}: {answer.status_code} {answer.text[:300]}")
        return answer.json()

    def new_org(self, name: str) -> str:
        """A US organisation (USD, like the bench's locations) with Xero's limits on."""
        return str(self.control("POST", "organisations", {"name": name, "country": "US"})["tenant_id"])

    def limits(self, org: str, enabled: bool) -> None:
        """Xero's limits off for the harness's own calls, or on again for the plugin's. Xero counts
        calls made while they were off too: turning them on waits until the harness's have left the
        minute window, so none of the plugin's calls is refused for them."""
        if enabled:
            time.sleep(60.0 / self.clock_speed + 0.5)
        self.control("PATCH", f"organisations/{org}", {"limits": {"enabled": enabled}})

    def token(self, org: str) -> dict[str, Any]:
        return dict(self.control("POST", "connect", {"client_id": XERO_CLIENT_ID, "tenant_ids": [org],
                                                     "scope": SCOPE}))

    def stats(self, reset: bool = False) -> dict[str, Any]:
        return dict(self.control("GET", "stats", params={"reset": "1"} if reset else None))

    def headers(self, org: str, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}", "xero-tenant-id": org, "Accept": "application/json"}


def start_xero_sandbox(st: Stack, latency_ms: float, clock_speed: float, webhook_url: str | None = None) -> XeroSandbox:
    """Start the sandbox process, register the bench's Xero app and point the plugin at it."""
    logs = st.workdir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log = (logs / "xero-sandbox.log").open("ab")
    popen = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "xero_sandbox", "--port", "0", "--latency-ms", str(latency_ms),
         "--clock-speed", str(clock_speed), "--quiet"],
        stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, cwd=str(ROOT), env=st.env)
    assert popen.stdout is not None
    line = popen.stdout.readline().decode()
    if "listening on " not in line:
        popen.kill()
        raise BenchError(f"xero_sandbox did not start; see {logs / 'xero-sandbox.log'}")
    proc = Proc("xero-sandbox", popen, log)
    st.procs.append(proc)
    sandbox = XeroSandbox(proc, line.split("listening on ", 1)[1].strip(), latency_ms, clock_speed)
    app: dict[str, Any] = {"client_id": XERO_CLIENT_ID, "client_secret": XERO_CLIENT_SECRET,
                           "redirect_uris": [XERO_REDIRECT_URI], "name": "crm-qbo bench"}
    if webhook_url:
        app.update(webhook_url=webhook_url, webhook_key=XERO_WEBHOOK_KEY)
    sandbox.control("POST", "apps", app)
    st.env.update({"CRM_QBO_XERO_CLIENT_ID": XERO_CLIENT_ID, "CRM_QBO_XERO_CLIENT_SECRET": XERO_CLIENT_SECRET,
                   "CRM_QBO_XERO_BASE_URL": sandbox.url, "CRM_QBO_XERO_WEBHOOK_KEY": XERO_WEBHOOK_KEY,
                   "CRM_QBO_XERO_REDIRECT_URI": XERO_REDIRECT_URI, "BENCH_CLOCK_SPEED": str(clock_speed)})
    st.close_app()  # the harness app must see the Xero settings
    return sandbox


def connect_xero(st: Stack, tenant: str, sandbox: XeroSandbox, org: str, import_invoices: bool = False) -> None:
    """Connect `tenant` to `org` as the Xero callback would (no browser), dated a second ago."""
    from crm_qbo_plugin.onboarding.xero_connect import save_xero_connection
    from crm_qbo_plugin.state import get_state
    from crm_qbo_plugin.store.connections import store_settings
    from crm_qbo_plugin.xero import Tokens

    app = st.app()
    state = get_state(app)
    tokens = Tokens.from_token_response(sandbox.token(org))
    now = datetime.now(UTC) - timedelta(seconds=1)
    with app.app_context():
        save_xero_connection(state, tenant, org, tokens, now=now, import_invoices=import_invoices)
        store_settings(state.engine, tenant, {}, lambda _current: dict(BOOKS), now)


class XeroRest:
    """The harness's own reads and writes (its calls must not count: limits off meanwhile)."""

    def __init__(self, sandbox: XeroSandbox, org: str) -> None:
        self.sandbox, self.org = sandbox, org
        self.session = requests.Session()
        self.session.headers.update(sandbox.headers(org, str(sandbox.token(org)["access_token"])))

    def put(self, endpoint: str, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """PUT records in arrays of 50; returns what Xero made."""
        made: list[dict[str, Any]] = []
        for start in range(0, len(records), 50):
            answer = self.session.put(f"{self.sandbox.api}/{endpoint}", json={endpoint: records[start:start + 50]},
                                      timeout=120, headers={"Idempotency-Key": secrets.token_hex(16)})
            if answer.status_code != 200:
                raise BenchError(f"seeding {endpoint}: {answer.status_code} {answer.text[:300]}")
            made.extend(answer.json()[endpoint])
        return made

    def all(self, endpoint: str, **params: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        page = 1
        while True:
            answer = self.session.get(f"{self.sandbox.api}/{endpoint}",
                                      params={"page": str(page), "pageSize": "1000", **params}, timeout=120)
            answer.raise_for_status()
            rows = answer.json()[endpoint]
            found.extend(rows)
            if len(rows) < 1000:
                return found
            page += 1


def wait_for_port(url: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=2)
            return
        except requests.RequestException:
            time.sleep(0.1)
    raise BenchError(f"{url} did not answer")
