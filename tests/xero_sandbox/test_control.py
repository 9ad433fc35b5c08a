"""The control API and the command line: organisations, validation of specs, reset, the control
token, and the refusal to bind a network address without one."""

from __future__ import annotations

import requests

from tests.xero_sandbox.support import CLIENT_ID, connect, control, create_org, register_app


def test_organisations_with_country_currency_and_tax_rates(xero_url):
    tenant = create_org(xero_url, name="Kiwi Ltd", country="AU", currencies=["USD", "aud"],
                        tax_rates=[{"name": "GST 10%", "tax_type": "OUTPUT", "rate": "10"}])
    settings = control(xero_url, "GET", f"organisations/{tenant}")
    assert (settings["country"], settings["base_currency"], settings["currencies"]) == (
        "AU", "AUD", ["AUD", "USD"])
    assert [(r["tax_type"], r["rate"]) for r in settings["tax_rates"]] == [
        ("OUTPUT", "10"), ("NONE", "0")]
    assert settings["limits"] == {"concurrent": 5, "per_minute": 60, "per_day": 5000,
                                  "enabled": True}
    for bad in ({"country": "XX"}, {"tenant_id": "not-a-guid"}, {"tax_rates": []},
                {"limits": {"per_minute": 0}}):
        answer = requests.post(f"{xero_url}/_sandbox/organisations", json=bad, timeout=10)
        assert answer.status_code == 400 and "error" in answer.json()
    assert len(control(xero_url, "GET", "organisations")["organisations"]) == 1


def test_tokens_expire_on_demand(xero_url):
    tenant = create_org(xero_url)
    register_app(xero_url)
    token = connect(xero_url)
    headers = {"Authorization": f"Bearer {token['access_token']}", "xero-tenant-id": tenant}
    assert requests.get(f"{xero_url}/api.xro/2.0/Items", headers=headers, timeout=10).status_code == 200
    assert control(xero_url, "POST", "tokens/expire", client_id=CLIENT_ID) == {"expired": 1}
    expired = requests.get(f"{xero_url}/api.xro/2.0/Items", headers=headers, timeout=10)
    assert expired.status_code == 401 and expired.json()["Detail"].startswith("TokenExpired: ")


def test_reset_forgets_everything(xero_url):
    create_org(xero_url)
    register_app(xero_url)
    token = connect(xero_url)
    control(xero_url, "POST", "reset")
    assert control(xero_url, "GET", "organisations") == {"organisations": []}
    assert control(xero_url, "GET", "apps") == {"apps": []}
    answer = requests.get(f"{xero_url}/connections", timeout=10,
                          headers={"Authorization": f"Bearer {token['access_token']}"})
    assert answer.status_code == 401
    assert requests.post(f"{xero_url}/_sandbox/connect", json={"client_id": CLIENT_ID},
                         timeout=10).status_code == 404


def test_control_token_guards_the_control_api():
    from xero_sandbox import create_app
    from xero_sandbox.server import serve_in_thread

    with serve_in_thread(create_app(control_token="s3cret")) as url:
        refused = requests.post(f"{url}/_sandbox/organisations", json={}, timeout=10)
        assert refused.status_code == 401
        assert requests.get(f"{url}/_sandbox/organisations", timeout=10,
                            headers={"X-Sandbox-Token": "wrong"}).status_code == 401
        allowed = requests.post(f"{url}/_sandbox/organisations", json={}, timeout=10,
                                headers={"X-Sandbox-Token": "s3cret"})
        assert allowed.status_code == 201


def test_cli_refuses_network_binding_without_control_token(capsys):
    from xero_sandbox.__main__ import is_loopback, main

    assert main(["--host", "0.0.0.0", "--port", "0"]) == 2
    assert "without --control-token" in capsys.readouterr().err
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("192.168.1.10")


def test_package_imports_neither_the_plugin_nor_the_qbo_sandbox():
    import ast
    from pathlib import Path

    import xero_sandbox

    for path in Path(xero_sandbox.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not [n for n in names if n.split(".")[0] in ("crm_qbo_plugin", "qbo_sandbox")], path
