"""The /_sandbox/ control API: companies, faults, latency, clock, stats, reset; the CLI."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import requests

from tests.sandbox.conftest import LiveRealm


def test_company_creation_and_patch(sandbox_app) -> None:
    client = sandbox_app.test_client()
    made = client.post("/_sandbox/companies", json={
        "name": "Maple", "country": "CA", "multicurrency": True, "custom_txn_numbers": True,
        "limits": {"per_minute": 100}, "realm_id": "123456789012345"})
    assert made.status_code == 201
    body = made.get_json()
    assert body["realmId"] == "123456789012345"
    assert (body["home_currency"], body["multicurrency"], body["custom_txn_numbers"]) == (
        "CAD", True, True)
    assert body["limits"] == {"per_minute": 100, "concurrent": 10, "batch_per_minute": 40,
                              "enabled": True}
    assert sorted(r["name"] for rates in body["tax_codes"].values() for r in rates) == [
        "Exempt", "GST", "HST ON", "Zero-rated"]
    assert client.post("/_sandbox/companies", json={"realm_id": "123456789012345"}).status_code == 400
    assert client.post("/_sandbox/companies", json={"country": "Narnia"}).status_code == 400
    patched = client.patch("/_sandbox/companies/123456789012345", json={
        "custom_txn_numbers": False, "limits": {"concurrent": 3}, "books_closed_date": "2024-12-31"})
    assert patched.status_code == 200
    assert patched.get_json()["custom_txn_numbers"] is False
    assert patched.get_json()["limits"]["concurrent"] == 3
    assert patched.get_json()["books_closed_date"] == "2024-12-31"
    assert client.patch("/_sandbox/companies/1", json={}).status_code == 404
    listed = client.get("/_sandbox/companies").get_json()["companies"]
    assert [c["realmId"] for c in listed] == ["123456789012345"]
    assert client.post("/_sandbox/reset").status_code == 200
    assert client.get("/_sandbox/companies").get_json()["companies"] == []


def test_faults_status_code_latency_times_and_reset(live: LiveRealm) -> None:
    base = live.base
    added = requests.post(f"{base}/_sandbox/faults", json={
        "path": "/item/", "method": "GET", "status": 503, "body": "down", "times": 1}, timeout=10)
    assert added.status_code == 201
    first = requests.get(f"{live.v3}/item/1", headers=live.headers, timeout=10)
    assert (first.status_code, first.text) == (503, "down")
    assert requests.get(f"{live.v3}/item/1", headers=live.headers, timeout=10).status_code == 200

    code = requests.post(f"{base}/_sandbox/faults", json={"path": r"customer$", "code": 10000},
                         timeout=10).json()
    sysfault = requests.post(f"{live.v3}/customer", json={"DisplayName": "X"},
                             headers=live.headers, timeout=10)
    assert sysfault.status_code == 500
    assert sysfault.json()["Fault"]["type"] == "SystemFault"
    assert sysfault.json()["Fault"]["Error"][0]["code"] == "10000"
    assert requests.delete(f"{base}/_sandbox/faults/{code['id']}", timeout=10).status_code == 200
    assert requests.post(f"{live.v3}/customer", json={"DisplayName": "X"}, headers=live.headers,
                         timeout=10).status_code == 200

    requests.post(f"{base}/_sandbox/faults", json={"path": "/item/1", "reset": True, "times": 1},
                  timeout=10)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{live.v3}/item/1", headers=live.headers, timeout=10)

    requests.post(f"{base}/_sandbox/faults", json={"path": "/item/1", "latency_ms": 300},
                  timeout=10)
    started = time.monotonic()
    assert requests.get(f"{live.v3}/item/1", headers=live.headers, timeout=10).status_code == 200
    assert time.monotonic() - started >= 0.3
    assert requests.delete(f"{base}/_sandbox/faults", timeout=10).status_code == 200
    assert requests.get(f"{base}/_sandbox/faults", timeout=10).json() == {"faults": []}
    assert requests.post(f"{base}/_sandbox/faults", json={"path": "x"}, timeout=10).status_code == 400
    stats = requests.get(f"{base}/_sandbox/stats", timeout=10).json()
    assert stats["faults_injected"] == 4


def test_global_latency_and_clock(live: LiveRealm) -> None:
    assert requests.post(f"{live.base}/_sandbox/latency", json={"latency_ms": 200},
                         timeout=10).json() == {"latency_ms": 200.0}
    started = time.monotonic()
    requests.get(f"{live.v3}/item/1", headers=live.headers, timeout=10)
    assert time.monotonic() - started >= 0.2
    before = requests.get(f"{live.base}/_sandbox/clock", timeout=10).json()
    after = requests.post(f"{live.base}/_sandbox/clock",
                          json={"advance_seconds": 86400, "speed": 2}, timeout=10).json()
    assert after["speed"] == 2
    assert after["now"][:10] > before["now"][:10]
    assert requests.post(f"{live.base}/_sandbox/clock", json={"advance_seconds": -1},
                         timeout=10).status_code == 400


def test_cli_serves(tmp_path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "qbo_sandbox", "--port", "0", "--quiet"],
                            stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert line.startswith("qbo_sandbox listening on http://127.0.0.1:")
        url = line.split()[-1]
        made = requests.post(f"{url}/_sandbox/companies", json={}, timeout=10)
        assert made.status_code == 201
        discovery = requests.get(f"{url}/.well-known/openid_configuration", timeout=10)
        assert discovery.status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_the_home_page_lists_companies_and_points_to_the_docs_in_the_repository(sandbox_app) -> None:
    """What `make demo` prints as "Sandbox QBO" (the sandbox's root) is a page, not a 404."""
    client = sandbox_app.test_client()
    empty = client.get("/")
    assert empty.status_code == 200 and empty.content_type.startswith("text/html")
    assert "No companies yet" in empty.get_data(as_text=True)
    client.post("/_sandbox/companies", json={"name": "Maple & Co <Books>", "country": "CA",
                                             "realm_id": "123456789012345"})
    page = client.get("/").get_data(as_text=True)
    assert "Maple &amp; Co &lt;Books&gt;" in page and "123456789012345" in page and "CAD" in page
    for pointer in ("qbo_sandbox/README.md", "docs/reference/qbo-api.md", "tests/fixtures/qbo-samples/",
                    "/_sandbox/tokens", "/.well-known/openid_configuration", "/v3/company/123456789012345/"):
        assert pointer in page, pointer
    assert client.get("/index.html").status_code == 404  # only the root
