"""Identity through the unmodified SDKs: consent + code flow (pyxero), PKCE (pyxero), refresh
rotation with Xero's 30-minute grace (xero-python and pyxero), revocation, connections, and the
401/403 bodies the Accounting API answers."""

from __future__ import annotations

import base64
import hashlib
import urllib.parse

import pytest
import requests

from tests.xero_sandbox.conftest import XeroPython
from tests.xero_sandbox.support import (
    CLIENT_ID,
    CLIENT_SECRET,
    REDIRECT_URI,
    SCOPE,
    approve,
    connect,
    control,
    register_app,
)

TOKEN_KEYS = {"id_token", "access_token", "expires_in", "token_type", "refresh_token", "scope"}


def _refresh(url: str, refresh_token: str) -> requests.Response:
    return requests.post(f"{url}/connect/token", auth=(CLIENT_ID, CLIENT_SECRET), timeout=10,
                         data={"grant_type": "refresh_token", "refresh_token": refresh_token})


def test_code_flow_through_consent_page_with_pyxero(sdk_urls, tenant_id):
    from xero import Xero
    from xero.auth import OAuth2Credentials

    cred = OAuth2Credentials(CLIENT_ID, CLIENT_SECRET, callback_uri=REDIRECT_URI, scope=SCOPE)
    url = cred.generate_url()
    assert url.startswith(f"{sdk_urls}/identity/connect/authorize?response_type=code")
    params = approve(url, tenant_id)
    assert params["state"] == cred.auth_state
    assert set(params["scope"].split()) == set(SCOPE)
    cred.verify(f"{REDIRECT_URI}?{urllib.parse.urlencode(params)}")
    assert set(cred.token) - {"expires_at"} == TOKEN_KEYS
    assert cred.token["expires_in"] == 1800 and cred.token["token_type"] == "Bearer"
    cred.base_url = sdk_urls
    tenants = cred.get_tenants()
    assert [(t["tenantId"], t["tenantType"], t["tenantName"]) for t in tenants] == [
        (tenant_id, "ORGANISATION", "Acme Ltd")]
    assert cred.get_tenants(auth_event_id=tenants[0]["authEventId"]) == tenants
    cred.tenant_id = tenant_id
    assert Xero(cred).organisations.all()[0]["Name"] == "Acme Ltd"
    # the code is single use
    again = requests.post(f"{sdk_urls}/connect/token", auth=(CLIENT_ID, CLIENT_SECRET), timeout=10,
                          data={"grant_type": "authorization_code", "code": params["code"],
                                "redirect_uri": REDIRECT_URI})
    assert (again.status_code, again.json()) == (400, {"error": "invalid_grant"})


def test_consent_denied_and_bad_requests(sdk_urls, tenant_id):
    from xero.auth import OAuth2Credentials

    cred = OAuth2Credentials(CLIENT_ID, CLIENT_SECRET, callback_uri=REDIRECT_URI, scope=SCOPE)
    params = approve(cred.generate_url(), tenant_id, decision="deny")
    assert params == {"error": "access_denied", "state": cred.auth_state}
    unknown = requests.get(f"{sdk_urls}/identity/connect/authorize", timeout=10, params={
        "response_type": "code", "client_id": "NOPE", "redirect_uri": REDIRECT_URI, "scope": "openid"})
    assert unknown.status_code == 400 and "Invalid client" in unknown.text
    wrong_uri = requests.get(f"{sdk_urls}/identity/connect/authorize", timeout=10, params={
        "response_type": "code", "client_id": CLIENT_ID, "redirect_uri": "http://evil/cb",
        "scope": "openid"})
    assert wrong_uri.status_code == 400 and "redirect_uri" in wrong_uri.text
    bad_secret = requests.post(f"{sdk_urls}/connect/token", auth=(CLIENT_ID, "wrong"), timeout=10,
                               data={"grant_type": "refresh_token", "refresh_token": "x"})
    assert (bad_secret.status_code, bad_secret.json()) == (400, {"error": "invalid_client"})
    assert control(sdk_urls, "GET", "stats")["token_endpoint_calls"] == 1


def test_pkce_flow_with_pyxero(sdk_urls, tenant_id):
    from xero.auth import OAuth2PKCECredentials
    from xero.exceptions import XeroAccessDenied

    register_app(sdk_urls, client_id="PKCEAPP", client_secret=None,
                 redirect_uris=["http://localhost:8080/callback"])

    def authorised_code(cred: OAuth2PKCECredentials) -> str:
        challenge = base64.urlsafe_b64encode(hashlib.sha256(cred.verifier).digest())[:-1].decode()
        url = f"{cred.generate_url()}&code_challenge={challenge}&code_challenge_method=S256"
        return approve(url, tenant_id, redirect_uri="http://localhost:8080/callback")["code"]

    cred = OAuth2PKCECredentials("PKCEAPP", None, port=8080, scope=SCOPE)
    cred.get_token(authorised_code(cred))
    assert set(cred.token) == TOKEN_KEYS
    cred.base_url = sdk_urls
    assert [t["tenantId"] for t in cred.get_tenants()] == [tenant_id]

    other = OAuth2PKCECredentials("PKCEAPP", None, port=8080, scope=SCOPE)
    code = authorised_code(other)
    other.verifier = b"a-different-verifier-that-is-long-enough-to-be-valid-0123456789"
    with pytest.raises(XeroAccessDenied, match="invalid_grant"):
        other.get_token(code)


def test_refresh_rotation_and_grace_period_with_xero_python(xp, sdk_urls, tenant_id):
    from xero_python.exceptions import HTTPStatusException

    first = dict(xp.store["token"])
    second = xp.client.refresh_oauth2_token()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert xp.accounting.get_organisations(tenant_id).organisations[0].name == "Acme Ltd"
    # the response was "lost": the previous refresh token still works for 30 minutes
    control(sdk_urls, "POST", "clock", advance_seconds=29 * 60)
    xp.store["token"] = dict(first)
    third = xp.client.refresh_oauth2_token()
    assert third["refresh_token"] not in (first["refresh_token"], second["refresh_token"])
    control(sdk_urls, "POST", "clock", advance_seconds=2 * 60)
    xp.store["token"] = dict(first)
    with pytest.raises(HTTPStatusException) as refused:
        xp.client.refresh_oauth2_token()
    assert refused.value.status == 400 and b'"invalid_grant"' in refused.value.body
    assert _refresh(sdk_urls, third["refresh_token"]).status_code == 200


def test_refresh_tokens_expire_after_60_days(xp, sdk_urls):
    token = xp.store["token"]
    control(sdk_urls, "POST", "clock", advance_seconds=59 * 86400)
    fresh = _refresh(sdk_urls, token["refresh_token"])
    assert fresh.status_code == 200 and set(fresh.json()) == TOKEN_KEYS
    control(sdk_urls, "POST", "clock", advance_seconds=2 * 86400)
    assert _refresh(sdk_urls, fresh.json()["refresh_token"]).status_code == 200
    late = _refresh(sdk_urls, token["refresh_token"])  # 61 days old (and superseded)
    assert (late.status_code, late.json()) == (400, {"error": "invalid_grant"})


def test_refresh_with_pyxero_uses_basic_auth_rotates_and_has_the_grace_period(px, sdk_urls,
                                                                                tenant_id):
    from oauthlib.oauth2.rfc6749.errors import InvalidGrantError

    cred = px.contacts.credentials
    first = dict(cred.token)
    new = cred.refresh()
    assert new["refresh_token"] != first["refresh_token"] and set(new) - {"expires_at"} == TOKEN_KEYS
    assert px.organisations.all()[0]["Name"] == "Acme Ltd"
    cred.token = dict(first)  # the rotated token was lost: the previous one works for 30 minutes
    assert cred.refresh()["refresh_token"] not in (first["refresh_token"], new["refresh_token"])
    control(sdk_urls, "POST", "clock", advance_seconds=1801)
    cred.token = dict(first)
    with pytest.raises(InvalidGrantError):
        cred.refresh()


def test_expired_access_token_gets_xeros_401_body(xp, px, sdk_urls, tenant_id):
    from xero.exceptions import XeroUnauthorized
    from xero_python.exceptions import HTTPStatusException

    control(sdk_urls, "POST", "clock", advance_seconds=1795)
    assert xp.accounting.get_contacts(tenant_id).contacts == []  # 30 minutes not yet up
    control(sdk_urls, "POST", "clock", advance_seconds=6)
    with pytest.raises(HTTPStatusException) as refused:
        xp.accounting.get_contacts(tenant_id)
    assert refused.value.status == 401
    body = refused.value.body
    assert b'"Title":"Unauthorized"' in body.replace(b" ", b"") and b"TokenExpired: token expired at" in body
    with pytest.raises(XeroUnauthorized, match="TokenExpired"):
        px.contacts.all()
    xp.client.refresh_oauth2_token()  # a refresh brings it back
    assert xp.accounting.get_contacts(tenant_id).contacts == []


def test_missing_scope_is_authorization_unsuccessful(sdk_urls, tenant_id):
    from xero_python.exceptions import HTTPStatusException

    client = XeroPython(sdk_urls, connect(sdk_urls, scope=["offline_access", "accounting.contacts"],
                                          tenant_ids=[tenant_id]))
    assert client.accounting.get_contacts(tenant_id).contacts == []
    with pytest.raises(HTTPStatusException) as refused:
        client.accounting.get_invoices(tenant_id)
    assert refused.value.status == 401 and b"AuthorizationUnsuccessful" in refused.value.body


def test_tenant_header_required(xp, sdk_urls, tenant_id):
    from xero_python.exceptions import HTTPStatusException

    access = xp.store["token"]["access_token"]
    for headers in ({}, {"xero-tenant-id": "00000000-0000-0000-0000-000000000000"}):
        answer = requests.get(f"{sdk_urls}/api.xro/2.0/Contacts", timeout=10,
                              headers={"Authorization": f"Bearer {access}", **headers})
        body = answer.json()
        assert answer.status_code == 403
        assert {k: body[k] for k in ("Type", "Title", "Status", "Detail", "Extensions")} == {
            "Type": None, "Title": "Forbidden", "Status": 403,
            "Detail": "AuthenticationUnsuccessful", "Extensions": {}}
    with pytest.raises(HTTPStatusException) as refused:
        xp.accounting.get_contacts("11111111-1111-1111-1111-111111111111")
    assert refused.value.status == 403
    # the header name is case-insensitive (pyxero sends Xero-tenant-id)
    ok = requests.get(f"{sdk_urls}/api.xro/2.0/contacts", timeout=10,
                      headers={"Authorization": f"Bearer {access}", "XERO-TENANT-ID": tenant_id})
    assert ok.status_code == 200 and ok.json()["Status"] == "OK"


def test_connections_list_and_delete_with_xero_python(xp, sdk_urls, tenant_id):
    from xero_python.exceptions import HTTPStatusException

    connections = xp.identity.get_connections()
    assert [(c.tenant_id, c.tenant_type, c.tenant_name) for c in connections] == [
        (tenant_id, "ORGANISATION", "Acme Ltd")]
    xp.identity.delete_connection(connections[0].id)
    assert xp.identity.get_connections() == []
    with pytest.raises(HTTPStatusException) as refused:
        xp.accounting.get_contacts(tenant_id)
    assert refused.value.status == 403
    with pytest.raises(HTTPStatusException) as missing:
        xp.identity.delete_connection(connections[0].id)
    assert missing.value.status == 404


def test_revocation_removes_connections_and_tokens(xp, sdk_urls, tenant_id):
    from xero_python.exceptions import HTTPStatusException

    token = dict(xp.store["token"])
    xp.client.revoke_oauth2_token()
    assert _refresh(sdk_urls, token["refresh_token"]).json() == {"error": "invalid_grant"}
    with pytest.raises(HTTPStatusException) as refused:
        xp.identity.get_connections()
    assert refused.value.status == 401
    fresh = XeroPython(sdk_urls, connect(sdk_urls, tenant_ids=[tenant_id]))
    assert [c.tenant_id for c in fresh.identity.get_connections()] == [tenant_id]


def test_client_credentials_grant_with_xero_python(xp, sdk_urls, tenant_id):
    token = xp.client.get_client_credentials_token()
    assert "refresh_token" not in token and token["expires_in"] == 1800
    assert xp.store["token"]["access_token"] == token["access_token"]  # saved by the SDK
    assert xp.accounting.get_organisations(tenant_id).organisations[0].name == "Acme Ltd"
    # an app connected to nothing cannot use it
    register_app(sdk_urls, client_id="LONELY", client_secret="s")
    answer = requests.post(f"{sdk_urls}/connect/token", auth=("LONELY", "s"), timeout=10,
                           data={"grant_type": "client_credentials"})
    assert (answer.status_code, answer.json()) == (400, {"error": "unauthorized_client"})
