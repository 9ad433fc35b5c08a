"""OAuth against the full sandbox (``create_app``): consent -> tokens -> the /v3 API -> expiry.

The REST side turns :meth:`OAuthServer.authenticate` refusals into QBO's lowercase 401 (3200)
body; these tests check the whole chain over real HTTP with unmodified intuit-oauth.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import pytest
import requests
from intuitlib.client import AuthClient
from intuitlib.enums import Scopes
from intuitlib.exceptions import AuthClientError

REDIRECT = "http://localhost:9999/e2e/callback"


def make_company(url: str, name: str) -> str:
    response = requests.post(f"{url}/_sandbox/companies", json={"name": name}, timeout=10)
    assert response.status_code == 201, response.text
    return response.json()["realmId"]


def company_info(url: str, realm: str, access_token: str) -> requests.Response:
    return requests.get(
        f"{url}/v3/company/{realm}/companyinfo/{realm}",
        headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
        params={"minorversion": "75"},
        timeout=10,
    )


@pytest.fixture
def registered(sandbox_url: str) -> AuthClient:
    response = requests.post(
        f"{sandbox_url}/_sandbox/apps",
        json={
            "client_id": "e2e-client",
            "client_secret": "e2e-secret",
            "redirect_uris": [REDIRECT],
            "name": "E2E CRM",
        },
        timeout=10,
    )
    assert response.status_code == 201
    return AuthClient(
        "e2e-client",
        "e2e-secret",
        REDIRECT,
        environment=f"{sandbox_url}/.well-known/openid_sandbox_configuration/",
    )


def test_consent_to_api_call_to_expiry(sandbox_url: str, sandbox_app, registered) -> None:
    first = make_company(sandbox_url, "Northwind Traders")
    second = make_company(sandbox_url, "Contoso Ltd")
    client = registered
    auth_url = client.get_authorization_url([Scopes.ACCOUNTING], state_token="e2e-state")

    page = requests.get(auth_url, timeout=10)
    assert page.status_code == 200
    assert "E2E CRM" in page.text
    assert "Northwind Traders" in page.text and "Contoso Ltd" in page.text
    assert ">Connect</button>" in page.text

    parsed = urlparse(auth_url)
    form = {k: v[0] for k, v in parse_qs(parsed.query).items()}
    response = requests.post(
        f"{sandbox_url}/connect/oauth2",
        data={**form, "realm_id": second, "decision": "allow"},
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 302
    query = parse_qs(urlparse(response.headers["Location"]).query)
    assert query["state"] == ["e2e-state"] and query["realmId"] == [second]
    client.get_bearer_token(query["code"][0], realm_id=query["realmId"][0])

    ok = company_info(sandbox_url, second, client.access_token)
    assert ok.status_code == 200, ok.text
    assert ok.json()["CompanyInfo"]["CompanyName"] == "Contoso Ltd"
    # The token is for the second company only.
    assert company_info(sandbox_url, first, client.access_token).status_code == 401

    # Expire the access token through the control API.
    moved = requests.post(
        f"{sandbox_url}/_sandbox/clock", json={"advance_seconds": 3601}, timeout=10
    )
    assert moved.status_code == 200
    expired = company_info(sandbox_url, second, client.access_token)
    assert expired.status_code == 401
    fault = expired.json()["fault"]
    assert fault["type"] == "AUTHENTICATION"
    assert fault["error"][0]["code"] == "3200"

    old_refresh = client.refresh_token
    client.refresh()
    assert company_info(sandbox_url, second, client.access_token).status_code == 200
    with pytest.raises(AuthClientError) as excinfo:
        client.refresh(refresh_token=old_refresh)
    assert excinfo.value.status_code == 400
    assert excinfo.value.response.json()["error"] == "invalid_grant"

    # Refresh token expiry on the same clock.
    sandbox_app.extensions["qbo_sandbox"].clock.advance(8_726_400 + 1)
    with pytest.raises(AuthClientError):
        client.refresh()


def test_revoked_tokens_are_refused_by_the_api(sandbox_url: str, registered) -> None:
    realm = make_company(sandbox_url, "Revoke Co")
    client = registered
    auth_url = client.get_authorization_url([Scopes.ACCOUNTING])
    parsed = urlparse(auth_url)
    form = {k: v[0] for k, v in parse_qs(parsed.query).items()}
    location = requests.post(
        f"{sandbox_url}/connect/oauth2",
        data={**form, "realm_id": realm, "decision": "allow"},
        allow_redirects=False,
        timeout=10,
    ).headers["Location"]
    client.get_bearer_token(parse_qs(urlparse(location).query)["code"][0], realm_id=realm)
    access = client.access_token
    assert company_info(sandbox_url, realm, access).status_code == 200
    assert client.revoke() is True
    assert company_info(sandbox_url, realm, access).status_code == 401
    with pytest.raises(AuthClientError):
        client.refresh()


def test_reset_restores_the_default_app(sandbox_url: str, registered) -> None:
    assert requests.post(f"{sandbox_url}/_sandbox/reset", timeout=10).status_code == 200
    apps = requests.get(f"{sandbox_url}/_sandbox/apps", timeout=10).json()["apps"]
    assert [a["client_id"] for a in apps] == ["sandbox-client-id"]
    realm = make_company(sandbox_url, "After Reset")
    tokens = requests.post(f"{sandbox_url}/_sandbox/tokens", json={"realm_id": realm}, timeout=10)
    assert tokens.status_code == 200
    assert company_info(sandbox_url, realm, tokens.json()["access_token"]).status_code == 200
