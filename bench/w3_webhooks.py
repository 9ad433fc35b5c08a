"""W3: a burst of E signed webhook notices in D seconds at the plugin's endpoint, served by waitress
(`crm-qbo serve`) in its own process, applied by `crm-qbo worker` processes.

Each notice (legacy format, one entity per POST, as Intuit sends for a quiet company) names a
customer the harness changed in QuickBooks just before. Senders run open-loop on a fixed schedule
(a late answer does not delay the next notice), so acknowledgement latency is what a burst sees.
Correct when every notice is in the inbox once, applied once, and every change is in the CRM.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import requests

from bench.infra import VERIFIER, BenchError, Stack, free_port
from bench.measure import api_counts, median, percentile, plugin_usage, rows, wait_until
from bench.sandbox_rest import Rest
from bench.w2_poll import check_changes, make_changes, pick_ids

SENDERS = 8
APPLY_TIMEOUT = 1800.0
WEBHOOK_PATH = "/integrations/quickbooks/webhooks"


def sign(body: bytes) -> str:
    return base64.b64encode(hmac.new(VERIFIER.encode(), body, hashlib.sha256).digest()).decode()


def notice_body(realm: str, customer: dict[str, Any]) -> bytes:
    entity = {"name": "Customer", "id": str(customer["Id"]), "operation": "Update",
              "lastUpdated": customer["MetaData"]["LastUpdatedTime"]}
    payload = {"eventNotifications": [{"realmId": realm, "dataChangeEvent": {"entities": [entity]}}]}
    return json.dumps(payload).encode()


def start_web(st: Stack, name: str = "w3-web") -> tuple[Any, str]:
    port = free_port()
    proc = st.spawn(name, st.plugin_argv("serve", "--port", str(port), "--threads", "8"))
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            requests.get(f"{url}/login", timeout=2)
            break
        except requests.RequestException:
            if not proc.alive() or time.monotonic() > deadline:
                raise BenchError("the plugin's web process did not start") from None
            time.sleep(0.1)
    proc.mark()
    return proc, url


def send_burst(url: str | list[str], bodies: list[bytes], seconds: float, path: str = WEBHOOK_PATH,
               signed: Callable[[bytes], dict[str, str]] | None = None) -> tuple[list[float], dict[int, int]]:
    """POST every body on an even schedule over `seconds` (to `url`, or to each of several in turn),
    signed as Intuit signs unless `signed` gives the headers; returns latencies (s) and status counts."""
    urls = [url] if isinstance(url, str) else url
    headers = signed or (lambda body: {"intuit-signature": sign(body)})
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    interval = seconds / max(1, len(bodies))
    origin = time.perf_counter() + 0.2

    def sender(offset: int) -> None:
        session = requests.Session()
        for index in range(offset, len(bodies), SENDERS):
            due = origin + index * interval
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            body = bodies[index]
            sent = time.perf_counter()
            try:
                answer = session.post(f"{urls[index % len(urls)]}{path}", data=body, timeout=30,
                                      headers={"Content-Type": "application/json", **headers(body)})
                status = answer.status_code
            except requests.RequestException:
                status = 0
            took = time.perf_counter() - sent
            with lock:
                latencies.append(took)
                statuses[status] = statuses.get(status, 0) + 1

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(SENDERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, statuses


def run(st: Stack, tenant: str, realm: str, notices: int, seconds: float, workers_count: int = 2,
        skip_first: int = 0) -> dict[str, Any]:
    assert st.sandbox is not None
    rest = Rest(st.sandbox, realm)
    customers = pick_ids(st, tenant, "contact", notices, skip_first)
    if len(customers) < notices:
        raise BenchError(f"W3 needs {notices} imported customers beyond the first {skip_first}")
    make_changes(rest, customers, [], "W3")
    bodies = []
    for start in range(0, len(customers), 500):
        chunk = ", ".join(f"'{i}'" for i in customers[start:start + 500])
        for body in rest.query(f"SELECT * FROM Customer WHERE Id IN ({chunk}) MAXRESULTS 1000").get("Customer", []):
            bodies.append(notice_body(realm, body))
    web, url = start_web(st)
    workers = st.start_workers(workers_count, "w3-worker")
    st.sandbox.stats(reset=True)
    started = time.perf_counter()
    latencies, statuses = send_burst(url, bodies, seconds)
    burst_wall = time.perf_counter() - started

    def all_applied() -> bool:
        left = rows(st, "SELECT COUNT(*) FROM qbo_inbox WHERE tenant_id = :t AND source = 'webhook' "
                        "AND status = 'pending'", t=tenant)[0][0]
        return int(left) == 0

    wait_until(all_applied, "the webhook notices to be applied", APPLY_TIMEOUT, [web, *workers], interval=0.05)
    consistent = time.perf_counter() - started
    web_usage = plugin_usage([web])
    worker_usage = plugin_usage(workers)
    counts = api_counts(st.sandbox.stats(reset=True), [realm])
    for proc in [*workers, web]:
        st.stop(proc)
    correct = check_changes(st, tenant, customers, [], "webhook")
    correct["ok"] = correct["ok"] and statuses.get(200, 0) == notices
    return {
        "notices": notices, "burst_seconds": seconds, "burst_wall_s": round(burst_wall, 3),
        "ack_p50_ms": round(median(latencies) * 1000, 2), "ack_p99_ms": round(percentile(latencies, 99) * 1000, 2),
        "ack_max_ms": round(max(latencies, default=0) * 1000, 2), "statuses": {str(k): v for k, v in statuses.items()},
        "consistent_after_s": round(consistent, 3),
        "web": web_usage, "workers": worker_usage,
        "cpu_s": round(web_usage["cpu_s"] + worker_usage["cpu_s"], 3),
        "peak_rss_mb": max(web_usage["peak_rss_mb"], worker_usage["peak_rss_mb"]),
        **counts, "correct": correct,
    }
