"""The Xero workloads, on one organisation per workload with Xero's limits on (5 in flight, 60 a
minute; the sandbox's clock sped up, so a Xero minute lasts 60/S real seconds):

- XP push: N new CRM invoices (one new contact per ten) pushed by `crm-qbo worker` processes, as
  W4 does for QuickBooks; 429s counted after the first Xero minute (the warm-up). Then the same on
  Xero's own clock with enough invoices that its limits bind (`run_push_at_limits`).
- XW webhooks: K of those invoices paid in Xero by the harness, then one signed Xero notice each
  sent open-loop to two `crm-qbo serve` processes; timed until every notice is settled and every
  payment is on its CRM invoice.
- XI import: C contacts and C invoices made in Xero, imported by the plugin on connect (the
  import job a connect queues), timed to its run's end, as W1 does for QuickBooks.

The floor is what Xero's limits allow: records in arrays of 50 (contacts first, then invoices), or
pages of 1,000 for an import, no more than 60 calls a Xero minute and 5 at once, each call taking L
(a 50-record PUT or a 1,000-row page, measured).
Peers: xero-python and pyxero loops that do the same writes (or reads) in their own process.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import os
import secrets
import sys
import time
from datetime import UTC, datetime
from typing import Any

from bench import peers
from bench.infra import ROOT, Proc, Stack, new_location
from bench.measure import median, percentile, plugin_usage, rows, wait_until
from bench.w1_import import check_import, import_done
from bench.w3_webhooks import send_burst, start_web
from bench.w4_push import INVOICES_PER_CONTACT, Ticker, crm_rows_settled, publish_invoices
from bench.xero_infra import (
    XERO_WEBHOOK_KEY,
    XeroRest,
    XeroSandbox,
    connect_xero,
    start_xero_sandbox,
)

ARRAY = 50
PER_MINUTE = 60
IN_FLIGHT = 5
TIMEOUT = 3600.0
WEBHOOK_PATH = "/integrations/quickbooks/xero/webhooks"
PEER_SCRIPT = ROOT / "bench" / "peer_scripts" / "xero_peers.py"


# -- floors ------------------------------------------------------------------------------------------
def floor(records_by_kind: list[int], call_s: float, speed: float, per_call: int = ARRAY) -> dict[str, Any]:
    """The least wall time Xero's limits allow for these writes, `per_call` records a request.

    Xero's minute is a rolling one: the first 60 calls may go at once (5 at a time), and call 61
    only when call 1 has left the minute, so each further 60 waits a whole Xero minute."""
    calls = sum(math.ceil(n / per_call) for n in records_by_kind if n)
    waits = max(0, calls - 1) // PER_MINUTE
    last = calls - waits * PER_MINUTE
    wall = waits * 60.0 / speed + math.ceil(last / IN_FLIGHT) * call_s
    return {"calls": calls, "records_per_call": per_call, "xero_minutes": round(calls / PER_MINUTE, 3),
            "wall_s": round(wall, 3)}


def probe(sandbox: XeroSandbox, org: str) -> float:
    """Median seconds of a 50-invoice PUT (the floor's L), on an organisation with limits off."""
    rest = XeroRest(sandbox, org)
    [contact] = rest.put("Contacts", [{"Name": f"Probe {secrets.token_hex(4)}"}])
    took = []
    for round_ in range(3):
        body = [_invoice(contact["ContactID"], f"PROBE-{round_}-{n}", n) for n in range(ARRAY)]
        started = time.perf_counter()
        rest.put("Invoices", body)
        took.append(time.perf_counter() - started)
    return median(took)


def _invoice(contact_id: str, number: str, index: int) -> dict[str, Any]:
    return {"Type": "ACCREC", "Contact": {"ContactID": contact_id}, "InvoiceNumber": number,
            "Status": "AUTHORISED", "Date": datetime.now(UTC).date().isoformat(),
            "DueDate": datetime.now(UTC).date().isoformat(), "LineAmountTypes": "NoTax",
            "LineItems": [{"Description": "Consulting", "Quantity": 1 + index % 3, "UnitAmount": "120.00",
                           "AccountCode": "200", "TaxType": "NONE"}]}


# -- XI: import --------------------------------------------------------------------------------------
PAGE = 1000


def seed_org(sandbox: XeroSandbox, name: str, contacts: int, invoices: int) -> str:
    """An organisation holding `contacts` contacts and `invoices` sent invoices (spread over them)."""
    org = sandbox.new_org(name)
    sandbox.limits(org, enabled=False)
    rest = XeroRest(sandbox, org)
    made = rest.put("Contacts", [{"Name": f"Xero {name} {n:06d}", "EmailAddress": f"xi-{n:06d}@bench.example.com"}
                                 for n in range(contacts)])
    rest.put("Invoices", [_invoice(made[n % len(made)]["ContactID"], f"XI-{n:06d}", n) for n in range(invoices)])
    return org


def page_probe(sandbox: XeroSandbox, org: str) -> float:
    """Median seconds of a 1,000-contact page (the import floor's L), limits off."""
    rest = XeroRest(sandbox, org)
    took = []
    for _ in range(3):
        started = time.perf_counter()
        rest.session.get(f"{sandbox.api}/Contacts", params={"page": "1", "pageSize": str(PAGE)},
                         timeout=120).raise_for_status()
        took.append(time.perf_counter() - started)
    return median(took)


def import_floor(contacts: int, invoices: int, call_s: float, speed: float) -> dict[str, Any]:
    """Pages of 1,000, plus a short page to end each entity whose count is a multiple of 1,000."""
    pages = [max(1, math.ceil(n / PAGE) + (1 if n % PAGE == 0 else 0)) for n in (contacts, invoices)]
    return floor(pages, call_s, speed, per_call=1)


def run_import(st: Stack, sandbox: XeroSandbox, org: str, contacts: int, invoices: int) -> dict[str, Any]:
    from crm_qbo_plugin.inbound.importer import start_import
    from crm_qbo_plugin.state import get_state

    sandbox.limits(org, enabled=True)
    tenant = new_location(st, "XI import")
    connect_xero(st, tenant, sandbox, org, import_invoices=True)
    workers = st.start_workers(1, "xi-worker")
    sandbox.stats(reset=True)
    start_import(get_state(st.app()), tenant)
    wall = wait_until(lambda: import_done(st, tenant), "the Xero import", TIMEOUT, workers, interval=0.02)
    usage = plugin_usage(workers)
    counts = _counts(sandbox.stats(reset=True), org)
    for proc in workers:
        st.stop(proc)
    return {"tenant": tenant, "records": contacts + invoices, "wall_s": round(wall, 3), **usage, **counts,
            "records_per_s": round((contacts + invoices) / wall, 1) if wall else None,
            "correct": check_import(st, tenant, contacts, invoices)}


# -- XP: push ----------------------------------------------------------------------------------------
def _counts(stats: dict[str, Any], org: str) -> dict[str, Any]:
    return {"calls": int(stats.get("by_tenant", {}).get(org, 0)), "throttled_429": int(stats.get("throttled", 0)),
            "by_endpoint": dict(stats.get("by_endpoint", {})),
            "max_in_flight": (stats.get("max_in_flight") or {}).get(org)}


def run_push(st: Stack, sandbox: XeroSandbox, invoices: int, workers_count: int) -> tuple[dict[str, Any], list[Proc]]:
    """XP; returns the figures and the workers, still running (XW reuses them)."""
    org = sandbox.new_org("XP push")
    tenant = new_location(st, "XP push")
    connect_xero(st, tenant, sandbox, org)
    publish_s = publish_invoices(st, tenant, invoices, "XP")
    sandbox.stats(reset=True)
    workers = st.start_workers(workers_count, "xero-worker", hold=True)
    ticker = Ticker(st, sandbox.stats)
    wall = wait_until(lambda: crm_rows_settled(st, [tenant]), "the Xero push", TIMEOUT, workers,
                      tick=ticker, interval=0.1)
    usage = plugin_usage(workers)
    counts = _counts(sandbox.stats(reset=True), org)
    sandbox.limits(org, enabled=False)
    correct = check_push(st, XeroRest(sandbox, org), tenant, invoices)
    contacts = math.ceil(invoices / INVOICES_PER_CONTACT)
    return {"tenant": tenant, "org": org, "invoices": invoices, "contacts": contacts, "workers": workers_count,
            "publish_s": round(publish_s, 3), "wall_s": round(wall, 3),
            "invoices_per_s": round(invoices / wall, 1) if wall else None, **usage, **counts,
            "throttled_after_warmup": ticker.throttled_after(60.0 / sandbox.clock_speed),
            "correct": correct}, workers


def run_push_at_limits(st: Stack, invoices: int, workers_count: int) -> dict[str, Any]:
    """XP on Xero's own clock (a minute lasts a minute), with enough invoices that the arrays
    need more than the first minute's 60 calls: there the floor is Xero's limits, not the
    sandbox's speed or the plugin's CPU, and calls the plugin spends on anything but the arrays
    the floor counts can cost it a whole minute."""
    sandbox = start_xero_sandbox(st, latency_ms=0.0, clock_speed=1.0)
    probe_org = sandbox.new_org("probe at limits")
    sandbox.limits(probe_org, enabled=False)
    call_s = probe(sandbox, probe_org)
    push, workers = run_push(st, sandbox, invoices, workers_count)
    for proc in workers:
        st.stop(proc)
    st.stop(sandbox.proc)
    return {"floor": floor([push["contacts"], invoices], call_s, 1.0), "call_s": round(call_s, 4), "plugin": push}


def check_push(st: Stack, rest: XeroRest, tenant: str, invoices: int) -> dict[str, Any]:
    contacts = math.ceil(invoices / INVOICES_PER_CONTACT)
    found = rest.all("Invoices", where='Type=="ACCREC"')
    numbers = {str(i.get("InvoiceNumber")) for i in found}
    people = rest.all("Contacts")
    outbox = {str(status): int(n) for status, n in rows(
        st, "SELECT status, COUNT(*) FROM qbo_outbox WHERE tenant_id = :t AND origin = 'crm' GROUP BY status", t=tenant)}
    links = {str(kind): (int(n), int(d)) for kind, n, d in rows(
        st, "SELECT kind, COUNT(*), COUNT(DISTINCT qbo_id) FROM qbo_link WHERE tenant_id = :t AND status = 'synced' "
            "GROUP BY kind", t=tenant)}
    ok = (len(found) == invoices and len(numbers) == invoices and len(people) == contacts
          and links.get("invoice") == (invoices, invoices) and links.get("contact") == (contacts, contacts)
          and not any(outbox.get(s, 0) for s in ("failed", "pending", "processing")))
    return {"ok": ok, "xero_invoices": len(found), "distinct_numbers": len(numbers), "xero_contacts": len(people),
            "outbox": outbox, "invoice_links": links.get("invoice", (0, 0))[0],
            "contact_links": links.get("contact", (0, 0))[0]}


# -- XW: webhooks ------------------------------------------------------------------------------------
def sign(body: bytes) -> str:
    return base64.b64encode(hmac.new(XERO_WEBHOOK_KEY.encode(), body, hashlib.sha256).digest()).decode()


def notice_body(org: str, invoice: dict[str, Any], sequence: int) -> bytes:
    """Xero's notice of a change to `invoice`, dated when the change happened (its UpdatedDateUTC), as
    Xero dates its events."""
    from crm_qbo_plugin.xero import parse_timestamp

    invoice_id = str(invoice["InvoiceID"])
    when = parse_timestamp(str(invoice["UpdatedDateUTC"])).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
    event = {"resourceUrl": f"https://api.xero.com/api.xro/2.0/Invoices/{invoice_id}", "resourceId": invoice_id,
             "eventDateUtc": when, "eventType": "UPDATE", "eventCategory": "INVOICE", "tenantId": org,
             "tenantType": "ORGANISATION"}
    return json.dumps({"events": [event], "firstEventSequence": sequence, "lastEventSequence": sequence,
                       "entropy": secrets.token_hex(10).upper()}).encode()


def run_webhooks(st: Stack, sandbox: XeroSandbox, push: dict[str, Any], notices: int, seconds: float,
                 webs: list[tuple[Proc, str]], workers: list[Proc]) -> dict[str, Any]:
    """Pay `notices` of the pushed invoices in Xero, then send one notice each."""
    tenant, org = push["tenant"], push["org"]
    rest = XeroRest(sandbox, org)
    paid = rest.all("Invoices", where='Type=="ACCREC"')[:notices]
    today = datetime.now(UTC).date().isoformat()
    rest.put("Payments", [{"Invoice": {"InvoiceID": i["InvoiceID"]}, "Account": {"Code": "090"}, "Date": today,
                           "Amount": str(i["AmountDue"])} for i in paid])
    changed = {str(i["InvoiceID"]): i for i in rest.all("Invoices", where='Type=="ACCREC"')}
    bodies = [notice_body(org, changed[str(i["InvoiceID"])], n + 1) for n, i in enumerate(paid)]
    sandbox.limits(org, enabled=True)
    procs = [proc for proc, _url in webs]
    for proc in [*procs, *workers]:
        proc.mark()
    sandbox.stats(reset=True)
    started = time.perf_counter()
    latencies, statuses = send_burst([url for _proc, url in webs], bodies, seconds, WEBHOOK_PATH,
                                     lambda body: {"x-xero-signature": sign(body)})
    burst_wall = time.perf_counter() - started
    crm_ids = [str(r[0]) for r in rows(st, "SELECT crm_id FROM qbo_link WHERE tenant_id = :t AND kind = 'invoice' "
                                           "AND qbo_id IN (" + ", ".join(f"'{i['InvoiceID']}'" for i in paid) + ")",
                                       t=tenant)]

    def applied() -> bool:
        left = rows(st, "SELECT COUNT(*) FROM qbo_inbox WHERE tenant_id = :t AND status = 'pending'", t=tenant)[0][0]
        return int(left) == 0 and _paid_in_crm(st, tenant, crm_ids) == len(paid)

    wait_until(applied, "the Xero notices to be applied", TIMEOUT, [*procs, *workers], interval=0.1)
    consistent = time.perf_counter() - started
    web_usage, worker_usage = plugin_usage(procs), plugin_usage(workers)
    counts = _counts(sandbox.stats(reset=True), org)
    ok = statuses.get(200, 0) == len(paid) and _paid_in_crm(st, tenant, crm_ids) == len(paid)
    return {"notices": len(paid), "burst_seconds": seconds, "burst_wall_s": round(burst_wall, 3),
            "ack_p50_ms": round(median(latencies) * 1000, 2), "ack_p99_ms": round(percentile(latencies, 99) * 1000, 2),
            "statuses": {str(k): v for k, v in statuses.items()}, "consistent_after_s": round(consistent, 3),
            "web": web_usage, "workers": worker_usage,
            "web_cpu_ms_per_notice": round(web_usage["cpu_s"] * 1000 / max(1, len(paid)), 2),
            **counts, "correct": {"ok": ok, "paid_in_crm": _paid_in_crm(st, tenant, crm_ids)}}


def _paid_in_crm(st: Stack, tenant: str, crm_ids: list[str]) -> int:
    from crm_qbo_plugin.host import InvoiceStatus
    from crm_qbo_plugin.state import get_state

    host = get_state(st.app()).host
    with st.app().app_context():
        return sum(1 for crm_id in crm_ids
                   if (found := host.get_invoice(tenant, crm_id)) is not None and found.status == InvoiceStatus.PAID)


# -- peers -------------------------------------------------------------------------------------------
def run_peer(sandbox: XeroSandbox, library: str, action: str, org: str, count: int) -> dict[str, Any]:
    """One peer loop (`bench/peer_scripts/xero_peers.py`) in its own process, on `org`."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("CRM_QBO_")},
           "OAUTHLIB_INSECURE_TRANSPORT": "1", "PYTHONPATH": str(ROOT)}
    token = sandbox.token(org)
    sandbox.stats(reset=True)
    wall, usage, out, tail = peers.run_process(
        [sys.executable, str(PEER_SCRIPT), library, action, sandbox.url, org, json.dumps(token), str(count)], env)
    counts = _counts(sandbox.stats(reset=True), org)
    lines = (out or "").strip().splitlines()
    if not lines or not lines[-1].startswith("{"):
        return {"error": tail.strip()[-400:] or "no result", "process_wall_s": round(wall, 3), **usage, **counts}
    found: dict[str, Any] = json.loads(lines[-1])
    return {**found, "process_wall_s": round(wall, 3), **usage, **counts}


# -- the Xero pass of one database -------------------------------------------------------------------
def run_all(st: Stack, invoices: int, notices: int, burst_seconds: float, workers_count: int, speed: float,
            with_peers: bool, log: Any = print, imports: int = 0, at_limits: int = 0) -> dict[str, Any]:
    """XI (when `imports`), XP and XW, with their peers, on a fresh sandbox; the figures and floors.
    Then, when `at_limits`, XP of that many invoices on Xero's own clock (`run_push_at_limits`)."""
    sandbox = start_xero_sandbox(st, latency_ms=0.0, clock_speed=speed)
    probe_org = sandbox.new_org("probe")
    sandbox.limits(probe_org, enabled=False)
    call_s = probe(sandbox, probe_org)
    contacts = math.ceil(invoices / INVOICES_PER_CONTACT)
    out: dict[str, Any] = {"clock_speed": speed, "call_s": round(call_s, 4), "workloads": {}}
    if imports:
        log(f"xero: XI import of {imports} + {imports} …")
        seeded = seed_org(sandbox, "XI", imports, imports)
        page_s = page_probe(sandbox, seeded)
        xi: dict[str, Any] = {"floor": import_floor(imports, imports, page_s, speed), "page_s": round(page_s, 4),
                              "plugin": run_import(st, sandbox, seeded, imports, imports)}
        if with_peers:
            for library in ("xero-python", "pyxero"):  # the limits still on, as for the plugin
                xi[library] = run_peer(sandbox, library, "import", seeded, imports)
        out["workloads"]["XI"] = xi
    webs = [start_web(st, f"xero-web-{n}") for n in range(2)]  # idle until XW
    log(f"xero: XP push of {invoices} invoices …")
    push, workers = run_push(st, sandbox, invoices, workers_count)
    xp: dict[str, Any] = {"floor": floor([contacts, invoices], call_s, speed),
                          "floor_one_per_call": floor([contacts, invoices], call_s, speed, per_call=1),
                          "plugin": push}
    log(f"xero: XW burst of {notices} notices …")
    out["workloads"]["XW"] = {"plugin": run_webhooks(st, sandbox, push, min(notices, invoices), burst_seconds,
                                                     webs, workers)}
    for proc in [*workers, *(proc for proc, _url in webs)]:
        st.stop(proc)
    if with_peers:
        for library in ("xero-python", "pyxero"):
            org = sandbox.new_org(f"XP {library}")
            xp[library] = run_peer(sandbox, library, "push", org, invoices)
    out["workloads"]["XP"] = xp
    if at_limits:
        log(f"xero: XP push of {at_limits} invoices on Xero's own clock …")
        xp["at_limits"] = run_push_at_limits(st, at_limits, workers_count)
    return out
