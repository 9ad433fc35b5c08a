"""The control API hands out app secrets, tokens for any company and a reset: bound beyond loopback,
the sandbox refuses to start without a control token, and with one every /_sandbox/ request needs it
(issue 15, item 13). On loopback without a token it stays open (demo, tests, bench)."""

from __future__ import annotations

import pytest

import qbo_sandbox.__main__ as cli
from qbo_sandbox import create_app
from qbo_sandbox.__main__ import main

TOKEN = "control-token-for-tests-0123"


@pytest.fixture(autouse=True)
def never_serve(monkeypatch):
    """main() must refuse before it binds anything."""
    def bound(host, *_args, **_kwargs):
        raise AssertionError(f"the sandbox bound {host}")

    monkeypatch.setattr(cli, "make_server", bound)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10", "::", "crm.example.com"])
def test_a_non_loopback_bind_without_a_control_token_is_refused(host, monkeypatch, capsys):
    monkeypatch.delenv("QBO_SANDBOX_CONTROL_TOKEN", raising=False)
    assert main(["--host", host, "--port", "0"]) == 2
    assert f"refusing to bind {host}" in capsys.readouterr().err


def test_a_short_control_token_is_refused(capsys):
    assert main(["--host", "0.0.0.0", "--port", "0", "--control-token", "short"]) == 2
    assert "at least 16 characters" in capsys.readouterr().err


def test_with_a_control_token_every_control_route_needs_it():
    app = create_app(control_token=TOKEN)
    client = app.test_client()
    calls = [("post", "/_sandbox/apps", {"client_id": "evil", "client_secret": "x" * 16, "redirect_uris": ["http://evil/cb"],
                                         "webhook_url": "http://169.254.169.254/latest"}),
             ("get", "/_sandbox/apps", None), ("post", "/_sandbox/companies", {"name": "Evil"}),
             ("post", "/_sandbox/tokens", {"realm_id": "1"}), ("post", "/_sandbox/reset", None),
             ("get", "/_sandbox/stats", None), ("post", "/_sandbox/webhooks/deliver", {"force": True})]
    for method, path, body in calls:
        for headers in ({}, {"X-Sandbox-Token": "wrong"}, {"X-Sandbox-Token": "é"}):
            answer = getattr(client, method)(path, json=body, headers=headers)
            assert answer.status_code == 401, (path, headers, answer.status_code)
            assert answer.get_json() == {"error": "the control API needs the sandbox's control token in X-Sandbox-Token"}
    allowed = {"X-Sandbox-Token": TOKEN}
    assert [a["client_id"] for a in client.get("/_sandbox/apps", headers=allowed).get_json()["apps"]] == [
        a["client_id"] for a in create_app().test_client().get("/_sandbox/apps").get_json()["apps"]]  # "evil" never registered
    assert client.post("/_sandbox/companies", json={"name": "Mine"}, headers=allowed).status_code == 201
    assert client.get("/.well-known/openid_configuration").status_code == 200  # Intuit's own routes need no token


def test_on_loopback_without_a_token_the_control_api_stays_open():
    client = create_app().test_client()
    assert client.post("/_sandbox/companies", json={"name": "Demo"}).status_code == 201
    assert client.get("/_sandbox/apps").status_code == 200
