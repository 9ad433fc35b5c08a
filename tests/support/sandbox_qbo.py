"""Driving qbo_sandbox from tests through its control API and its consent page, as a script would."""

from __future__ import annotations

import urllib.parse
from typing import Any

import requests

CLIENT_ID = "test-client"
CLIENT_SECRET = "test-client-secret"
REDIRECT_URI = "http://127.0.0.1:5000/integrations/quickbooks/callback"
VERIFIER = "test-verifier"


def create_company(base_url: str, **spec: Any) -> str:
    response = requests.post(f"{base_url}/_sandbox/companies", json={"name": "Acme Books", **spec}, timeout=10)
    assert response.status_code == 201, response.text
    return str(response.json()["realmId"])


def register_app(base_url: str, **extra: Any) -> None:
    body = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "redirect_uris": [REDIRECT_URI],
            "verifier_token": VERIFIER, **extra}
    response = requests.post(f"{base_url}/_sandbox/apps", json=body, timeout=10)
    assert response.status_code == 201, response.text


def plugin_overrides(base_url: str) -> dict[str, str]:
    """CRM_QBO_* settings that point the plugin at this sandbox."""
    return {
        "CRM_QBO_ENVIRONMENT": f"{base_url}/.well-known/openid_configuration",
        "CRM_QBO_API_BASE_URL": base_url,
        "CRM_QBO_CLIENT_ID": CLIENT_ID,
        "CRM_QBO_CLIENT_SECRET": CLIENT_SECRET,
        "CRM_QBO_REDIRECT_URI": REDIRECT_URI,
    }


def approve(authorize_url: str, realm_id: str, decision: str = "allow") -> dict[str, str]:
    """Approve the consent page for `realm_id`; returns the redirect's query parameters."""
    parsed = urllib.parse.urlsplit(authorize_url)
    params = dict(urllib.parse.parse_qsl(parsed.query))
    page = requests.get(authorize_url, timeout=10)
    assert page.status_code == 200, page.text
    form = {**params, "realm_id": realm_id, "decision": decision}
    answer = requests.post(urllib.parse.urlunsplit(parsed._replace(query="")), data=form,
                           allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text
    location = answer.headers["Location"]
    assert location.startswith(REDIRECT_URI)
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))
