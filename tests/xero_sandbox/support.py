"""Driving xero_sandbox from tests: its control API, its consent page, and both Xero SDKs
pointed at it exactly as docs/reference/xero-api.md §8 describes."""

from __future__ import annotations

import urllib.parse
from typing import Any

import requests

CLIENT_ID = "XEROTESTCLIENT"
CLIENT_SECRET = "xero-test-secret"
REDIRECT_URI = "http://localhost:5000/xero/callback"
SCOPE = ["openid", "profile", "email", "offline_access", "accounting.transactions",
         "accounting.contacts", "accounting.settings"]


def create_org(base_url: str, **spec: Any) -> str:
    response = requests.post(f"{base_url}/_sandbox/organisations",
                             json={"name": "Acme Ltd", **spec}, timeout=10)
    assert response.status_code == 201, response.text
    return str(response.json()["tenant_id"])


def register_app(base_url: str, **extra: Any) -> dict[str, Any]:
    body = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
            "redirect_uris": [REDIRECT_URI], "name": "CRM Sync", **extra}
    response = requests.post(f"{base_url}/_sandbox/apps", json=body, timeout=10)
    assert response.status_code == 201, response.text
    return dict(response.json())


def connect(base_url: str, scope: list[str] | None = None, client_id: str = CLIENT_ID,
            tenant_ids: list[str] | None = None) -> dict[str, Any]:
    """A token response without the browser (the control API)."""
    body: dict[str, Any] = {"client_id": client_id, "scope": " ".join(scope or SCOPE)}
    if tenant_ids is not None:
        body["tenant_ids"] = tenant_ids
    response = requests.post(f"{base_url}/_sandbox/connect", json=body, timeout=10)
    assert response.status_code == 200, response.text
    return dict(response.json())


def approve(authorize_url: str, tenant_id: str, decision: str = "allow",
            redirect_uri: str = REDIRECT_URI) -> dict[str, str]:
    """Open the consent page, pick the organisation and allow; the redirect's query params."""
    parsed = urllib.parse.urlsplit(authorize_url)
    params = dict(urllib.parse.parse_qsl(parsed.query))
    page = requests.get(authorize_url, timeout=10)
    assert page.status_code == 200, page.text
    assert tenant_id in page.text
    form = {**params, "tenant_id": tenant_id, "decision": decision}
    answer = requests.post(urllib.parse.urlunsplit(parsed._replace(query="")), data=form,
                           allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text
    location = answer.headers["Location"]
    assert location.startswith(redirect_uri)
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))


def control(base_url: str, verb: str, endpoint: str, **body: Any) -> Any:
    response = requests.request(verb, f"{base_url}/_sandbox/{endpoint}", json=body or None,
                                timeout=10)
    assert response.status_code < 300, response.text
    return response.json()
