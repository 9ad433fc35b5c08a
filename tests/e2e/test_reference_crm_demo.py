"""The demo (`crm-demo`) end to end: it starts everything, prints where to sign in, the CRM and the
QuickBooks card answer, the sandbox's consent page is one click away, and SIGINT stops every
process it started."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading

import requests

from tests.support.demo_process import pid_alive, read_lines, wait_for
from tests.support.redis_server import free_port

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
CARD_CSRF = re.compile(r'data-csrf="([^"]+)"')  # the card's own form token (the CRM's page has its own)


def test_the_demo_runs_everything_and_stops_everything(tmp_path):
    port, sandbox_port, xero_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CRM_QBO_", "REFERENCE_CRM_"))}
    env.update(REFERENCE_CRM_DEMO_PORT=str(port), REFERENCE_CRM_DEMO_SANDBOX_PORT=str(sandbox_port),
               REFERENCE_CRM_DEMO_XERO_PORT=str(xero_port), REFERENCE_CRM_DEMO_DIR=str(tmp_path / ".demo"),
               PYTHONUNBUFFERED="1")
    demo = subprocess.Popen([sys.executable, "-m", "reference_crm"], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=read_lines, args=(demo.stdout, lines), daemon=True).start()
    seen: list[str] = []
    try:
        wait_for(lines, seen, "Press Ctrl-C to stop.")
        out = "".join(seen)
        crm_url = re.search(r"CRM:\s+(http://\S+)/\n", out).group(1)
        email, password = re.search(r"Sign in:\s+(\S+) / (\S+)\n", out).groups()
        pids = {name: int(pid) for name, pid in re.findall(r"(\w+) (\d+)", re.search(r"Processes:\s+(.*)\n", out).group(1))}
        assert crm_url == f"http://127.0.0.1:{port}"
        assert set(pids) >= {"sandbox", "xero", "web", "worker", "scheduler"}
        assert all(pid_alive(pid) for pid in pids.values())
        sandbox_link = re.search(r"Sandbox QBO:\s+(http://\S+)\s", out).group(1)
        sandbox_home = requests.get(sandbox_link, timeout=10)  # the printed link lands on a page
        assert sandbox_home.status_code == 200 and "Sandbox Company US" in sandbox_home.text
        assert "qbo_sandbox/README.md" in sandbox_home.text

        browser = requests.Session()
        login_page = browser.get(f"{crm_url}/login", timeout=10)
        signed_in = browser.post(f"{crm_url}/login", timeout=10, data={
            "email": email, "password": password, "csrf_token": CSRF.search(login_page.text).group(1)})
        assert signed_in.status_code == 200 and signed_in.url == f"{crm_url}/contacts"
        assert "Ada Lovelace" in signed_in.text

        card = browser.get(f"{crm_url}/integrations/quickbooks/", timeout=10)
        assert card.status_code == 200 and "Connect to QuickBooks" in card.text
        connect = browser.post(f"{crm_url}/integrations/quickbooks/connect", timeout=10, allow_redirects=False,
                               data={"csrf_token": CARD_CSRF.search(card.text).group(1)})
        assert connect.status_code == 303
        consent_url = connect.headers["Location"]
        assert consent_url.startswith(f"http://127.0.0.1:{sandbox_port}/connect/oauth2?")
        consent = requests.get(consent_url, timeout=10)
        assert consent.status_code == 200
        assert "Reference CRM (demo)" in consent.text and "Sandbox Company US" in consent.text

        # The Xero organisation is seeded, its app's webhooks point at the CRM (check passed), and the
        # second location's card offers Xero, whose consent page names the organisation.
        xero_url, org = re.search(r"Sandbox Xero:\s+(http://\S+)\s+organisation \"Kiwi Gardens Ltd\" \(tenant (\S+)\)", out).groups()
        assert xero_url == f"http://127.0.0.1:{xero_port}"
        assert [o["name"] for o in requests.get(f"{xero_url}/_sandbox/organisations", timeout=10).json()["organisations"]] == [
            "Kiwi Gardens Ltd"]
        apps = {a["client_id"]: a for a in requests.get(f"{xero_url}/_sandbox/apps", timeout=10).json()["apps"]}
        assert apps["reference-crm-demo-xero"]["webhook_status"] == "OK"
        token = requests.post(f"{xero_url}/_sandbox/connect", timeout=10, json={
            "client_id": "reference-crm-demo-xero-seeder", "tenant_ids": [org]}).json()["access_token"]
        books = {"Authorization": f"Bearer {token}", "xero-tenant-id": org, "Accept": "application/json"}
        invoices = requests.get(f"{xero_url}/api.xro/2.0/Invoices", headers=books, timeout=10).json()["Invoices"]
        assert [(i["InvoiceNumber"], i["Contact"]["Name"], str(i["Total"]), i["Status"], i["CurrencyCode"]) for i in invoices] == [
            ("INV-0001", "Aroha Ngata", "186.88", "AUTHORISED", "NZD"),
            ("INV-0002", "Tane Mahuta Nursery", "195.5", "AUTHORISED", "NZD"),
            ("INV-0003", "Kauri Cafe", "69.0", "AUTHORISED", "NZD")]
        xero_email = re.search(r"Xero location:\s+sign in as (\S+) ", out).group(1)
        kiwi = requests.Session()
        login_page = kiwi.get(f"{crm_url}/login", timeout=10)
        signed_in = kiwi.post(f"{crm_url}/login", timeout=10, data={
            "email": xero_email, "password": password, "csrf_token": CSRF.search(login_page.text).group(1)})
        assert signed_in.status_code == 200 and "Kate Sheppard" in signed_in.text and "Ada Lovelace" not in signed_in.text
        card = kiwi.get(f"{crm_url}/integrations/quickbooks/", timeout=10)
        assert "Connect to Xero instead" in card.text
        connect = kiwi.post(f"{crm_url}/integrations/quickbooks/connect", timeout=10, allow_redirects=False,
                            data={"csrf_token": CARD_CSRF.search(card.text).group(1), "provider": "xero"})
        assert connect.status_code == 303
        assert connect.headers["Location"].startswith(f"{xero_url}/identity/connect/authorize?")
        consent = requests.get(connect.headers["Location"], timeout=10)
        assert consent.status_code == 200
        assert "Reference CRM (demo)" in consent.text and "Kiwi Gardens Ltd" in consent.text
    finally:
        demo.send_signal(signal.SIGINT)
        code = demo.wait(timeout=60)
    wait_for(lines, seen, "every process it started has exited", timeout=5)
    assert code == 0, "".join(seen)
    assert [name for name, pid in pids.items() if pid_alive(pid)] == []
