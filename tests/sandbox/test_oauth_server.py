"""The sandbox's OAuth 2.0 server driven by the unmodified intuit-oauth client over real HTTP.

These tests mount the OAuth and webhook blueprints on a minimal Flask app with a fake company
list, so they exercise exactly the classes the full sandbox (``create_app``) wires together;
``test_oauth_e2e.py`` repeats the main flow against ``create_app``.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urlparse

import pytest
import requests
from flask import Flask
from intuitlib.client import AuthClient
from intuitlib.enums import Scopes
from intuitlib.exceptions import AuthClientError

from qbo_sandbox.clock import Clock
from qbo_sandbox.oauth import OAuthServer
from qbo_sandbox.server import serve_in_thread
from qbo_sandbox.webhooks import WebhookDispatcher

COMPANIES = [("9130350000000001", "Sandbox Company US 1"), ("9130350000000002", "Acme & Widgets")]
REDIRECT = "http://localhost:9999/qbo/callback"


@dataclass
class Env:
    url: str
    clock: Clock
    oauth: OAuthServer
    webhooks: WebhookDispatcher


@pytest.fixture
def env() -> Iterator[Env]:
    clock = Clock()
    oauth = OAuthServer(clock, lambda: list(COMPANIES))
    webhooks = WebhookDispatcher(clock, oauth)
    app = Flask("qbo_sandbox_oauth_test")
    app.register_blueprint(oauth.blueprint)
    app.register_blueprint(webhooks.blueprint)
    with serve_in_thread(app) as url:
        yield Env(url, clock, oauth, webhooks)


def register(url: str, client_id: str = "test-client", secret: str = "test-secret", **extra):
    body = {"client_id": client_id, "client_secret": secret, "redirect_uris": [REDIRECT], **extra}
    response = requests.post(f"{url}/_sandbox/apps", json=body, timeout=5)
    assert response.status_code == 201, response.text
    return response.json()


def auth_client(
    url: str, client_id: str = "test-client", secret: str = "test-secret"
) -> AuthClient:
    return AuthClient(
        client_id, secret, REDIRECT, environment=f"{url}/.well-known/openid_configuration"
    )


def approve(auth_url: str, realm_id: str, decision: str = "allow") -> requests.Response:
    """What a user clicking Connect does: POST the consent form back with the query params."""
    parsed = urlparse(auth_url)
    form = {k: v[0] for k, v in parse_qs(parsed.query).items()}
    form.update(realm_id=realm_id, decision=decision)
    target = f"{parsed.scheme}://{parsed.netloc}{parsed.path}"
    return requests.post(target, data=form, allow_redirects=False, timeout=5)


def connect(url: str, realm_id: str = COMPANIES[0][0]) -> AuthClient:
    client = auth_client(url)
    auth_url = client.get_authorization_url([Scopes.ACCOUNTING], state_token="st4te")
    response = approve(auth_url, realm_id)
    query = parse_qs(urlparse(response.headers["Location"]).query)
    client.get_bearer_token(query["code"][0], realm_id=query["realmId"][0])
    return client


def test_discovery_document_points_at_this_host(env: Env) -> None:
    for path in (
        "/.well-known/openid_configuration",
        "/.well-known/openid_configuration/",
        "/.well-known/openid_sandbox_configuration",
        "/.well-known/openid_sandbox_configuration/",
    ):
        response = requests.get(env.url + path, timeout=5, allow_redirects=False)
        assert response.status_code == 200, path
        doc = response.json()
        assert doc["authorization_endpoint"] == f"{env.url}/connect/oauth2"
        assert doc["token_endpoint"] == f"{env.url}/oauth2/v1/tokens/bearer"
        assert doc["revocation_endpoint"] == f"{env.url}/v2/oauth2/tokens/revoke"
        assert doc["userinfo_endpoint"] == f"{env.url}/v1/openid_connect/userinfo"
        assert doc["issuer"].startswith(env.url)
        assert doc["jwks_uri"].startswith(env.url)
        assert "client_secret_basic" in doc["token_endpoint_auth_methods_supported"]
    assert requests.get(doc["jwks_uri"], timeout=5).json() == {"keys": []}


def test_discovery_keys_match_intuit_sample(env: Env, samples_dir) -> None:
    import json

    sample = json.loads((samples_dir / "oauth-discovery-production.json").read_text())
    doc = requests.get(f"{env.url}/.well-known/openid_configuration", timeout=5).json()
    assert list(doc) == list(sample)


def test_full_flow_with_intuit_oauth(env: Env) -> None:
    register(env.url, name="Acme CRM Sync")
    client = auth_client(env.url)
    auth_url = client.get_authorization_url([Scopes.ACCOUNTING], state_token="csrf-123")
    assert auth_url.startswith(f"{env.url}/connect/oauth2?")

    page = requests.get(auth_url, timeout=5)
    assert page.status_code == 200
    assert "text/html" in page.headers["Content-Type"]
    assert "Acme CRM Sync" in page.text
    assert "Sandbox Company US 1" in page.text
    assert "Acme &amp; Widgets" in page.text  # escaped
    assert re.search(r"<button[^>]*value=\"allow\"[^>]*>Connect</button>", page.text)
    assert "Cancel" in page.text

    realm = COMPANIES[1][0]
    response = approve(auth_url, realm)
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith(REDIRECT + "?code=")
    query = parse_qs(urlparse(location).query)
    assert query["state"] == ["csrf-123"]
    assert query["realmId"] == [realm]

    client.get_bearer_token(query["code"][0], realm_id=query["realmId"][0])
    assert client.realm_id == realm
    assert client.access_token and client.refresh_token
    assert client.expires_in == 3600
    assert client.x_refresh_token_expires_in == 8726400
    assert client.id_token is None
    assert env.oauth.authenticate(f"Bearer {client.access_token}", realm) is None
    assert env.oauth.authenticate(f"Bearer {client.access_token}", COMPANIES[0][0]) is not None
    assert env.oauth.authenticate(None, realm) is not None
    assert env.oauth.authenticate("Bearer nope", realm) == "Token invalid"
    assert env.oauth.authenticate(f"Basic {client.access_token}", realm) is not None

    # The refresh token rotates; the superseded one is refused like Intuit does.
    first_refresh, first_access = client.refresh_token, client.access_token
    client.refresh()
    assert client.refresh_token != first_refresh
    assert client.access_token != first_access
    assert env.oauth.authenticate(f"Bearer {client.access_token}", realm) is None
    with pytest.raises(AuthClientError) as excinfo:
        client.refresh(refresh_token=first_refresh)
    assert excinfo.value.status_code == 400
    assert excinfo.value.response.json() == {
        "error": "invalid_grant",
        "error_description": "Incorrect or invalid refresh token",
    }

    # Userinfo works with the access token.
    info = client.get_user_info().json()
    assert info["sub"] and info["email"]

    # Revoke: the app is disconnected; neither token works any more.
    live_access, live_refresh = client.access_token, client.refresh_token
    assert client.revoke() is True
    assert env.oauth.authenticate(f"Bearer {live_access}", realm) is not None
    with pytest.raises(AuthClientError) as excinfo:
        client.refresh(refresh_token=live_refresh)
    assert excinfo.value.status_code == 400
    assert excinfo.value.response.json()["error"] == "invalid_grant"
    assert env.oauth.apps_for_realm(realm) == [] or all(
        c.client_id != "test-client" for c in env.oauth.apps_for_realm(realm)
    )


def test_token_endpoint_calls_are_counted(env: Env) -> None:
    register(env.url)
    before = env.oauth.token_endpoint_calls
    client = connect(env.url)
    client.refresh()
    with pytest.raises(AuthClientError):
        client.refresh(refresh_token="AB11bogus")
    assert env.oauth.token_endpoint_calls == before + 3


def test_access_token_expires_after_an_hour_of_sandbox_time(env: Env) -> None:
    register(env.url)
    client = connect(env.url)
    realm = COMPANIES[0][0]
    header = f"Bearer {client.access_token}"
    env.clock.advance(3590)
    assert env.oauth.authenticate(header, realm) is None
    env.clock.advance(11)
    reason = env.oauth.authenticate(header, realm)
    assert reason is not None and reason.startswith("Token expired: ")
    assert client.access_token[:10] in reason
    # The refresh token outlives it.
    client.refresh()
    assert env.oauth.authenticate(f"Bearer {client.access_token}", realm) is None


def test_refresh_token_expires_after_its_advertised_lifetime(env: Env) -> None:
    register(env.url)
    client = connect(env.url)
    lifetime = 8_726_400  # what x_refresh_token_expires_in advertises (Intuit's "100 days")
    env.clock.advance(lifetime - 60)
    client.refresh()  # still valid just before expiry; rolling: the new one lives as long again
    env.clock.advance(lifetime - 60)
    client.refresh()
    env.clock.advance(lifetime + 1)
    with pytest.raises(AuthClientError) as excinfo:
        client.refresh()
    assert excinfo.value.status_code == 400
    assert excinfo.value.response.json()["error"] == "invalid_grant"


def test_revoke_with_form_body_and_access_token(env: Env) -> None:
    register(env.url)
    client = connect(env.url)
    response = requests.post(
        f"{env.url}/v2/oauth2/tokens/revoke",
        data={"token": client.access_token},
        auth=("test-client", "test-secret"),
        timeout=5,
    )
    assert response.status_code == 200
    assert env.oauth.authenticate(f"Bearer {client.access_token}", COMPANIES[0][0]) is not None
    with pytest.raises(AuthClientError):
        client.refresh()


def test_revoke_requires_client_credentials(env: Env) -> None:
    register(env.url)
    client = connect(env.url)
    response = requests.post(
        f"{env.url}/v2/oauth2/tokens/revoke",
        json={"token": client.refresh_token},
        auth=("test-client", "wrong"),
        timeout=5,
    )
    assert response.status_code == 401
    client.refresh()  # still connected


def test_deny_redirects_with_access_denied(env: Env) -> None:
    register(env.url)
    client = auth_client(env.url)
    auth_url = client.get_authorization_url([Scopes.ACCOUNTING], state_token="s1")
    response = approve(auth_url, COMPANIES[0][0], decision="deny")
    assert response.status_code == 302
    assert response.headers["Location"] == f"{REDIRECT}?error=access_denied&state=s1"


def test_unknown_client_and_bad_redirect_uri_show_an_error_page(env: Env) -> None:
    register(env.url)
    base = f"{env.url}/connect/oauth2"
    params = {
        "client_id": "nobody",
        "response_type": "code",
        "scope": "com.intuit.quickbooks.accounting",
        "redirect_uri": REDIRECT,
        "state": "x",
    }
    response = requests.get(base, params=params, allow_redirects=False, timeout=5)
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert "Invalid client" in response.text

    params.update(client_id="test-client", redirect_uri="https://evil.example/cb")
    response = requests.get(base, params=params, allow_redirects=False, timeout=5)
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert "redirect_uri" in response.text
    # A POST cannot sneak past the check either.
    response = requests.post(
        base,
        data={**params, "realm_id": COMPANIES[0][0], "decision": "allow"},
        allow_redirects=False,
        timeout=5,
    )
    assert response.status_code == 400
    assert "Location" not in response.headers


def test_scope_and_response_type_are_validated(env: Env) -> None:
    register(env.url)
    base = f"{env.url}/connect/oauth2"
    params = {
        "client_id": "test-client",
        "response_type": "code",
        "scope": "openid email",
        "redirect_uri": REDIRECT,
        "state": "z",
    }
    response = requests.get(base, params=params, allow_redirects=False, timeout=5)
    assert response.status_code == 302
    assert response.headers["Location"] == f"{REDIRECT}?error=invalid_scope&state=z"
    params.update(scope="com.intuit.quickbooks.accounting openid", response_type="token")
    response = requests.get(base, params=params, allow_redirects=False, timeout=5)
    assert response.headers["Location"] == f"{REDIRECT}?error=unsupported_response_type&state=z"
    params.update(response_type="code")
    assert requests.get(base, params=params, timeout=5).status_code == 200


def test_code_is_single_use(env: Env) -> None:
    register(env.url)
    client = auth_client(env.url)
    auth_url = client.get_authorization_url([Scopes.ACCOUNTING])
    query = parse_qs(urlparse(approve(auth_url, COMPANIES[0][0]).headers["Location"]).query)
    code = query["code"][0]
    client.get_bearer_token(code, realm_id=COMPANIES[0][0])
    with pytest.raises(AuthClientError) as excinfo:
        client.get_bearer_token(code, realm_id=COMPANIES[0][0])
    assert excinfo.value.status_code == 400
    assert excinfo.value.response.json()["error"] == "invalid_grant"


def test_code_expires_after_ten_minutes(env: Env) -> None:
    register(env.url)
    client = auth_client(env.url)
    auth_url = client.get_authorization_url([Scopes.ACCOUNTING])
    query = parse_qs(urlparse(approve(auth_url, COMPANIES[0][0]).headers["Location"]).query)
    env.clock.advance(601)
    with pytest.raises(AuthClientError) as excinfo:
        client.get_bearer_token(query["code"][0])
    assert excinfo.value.response.json()["error"] == "invalid_grant"


def test_code_is_bound_to_client_and_redirect_uri(env: Env) -> None:
    register(env.url)
    register(env.url, client_id="other-client", secret="other-secret")
    client = auth_client(env.url)
    auth_url = client.get_authorization_url([Scopes.ACCOUNTING])
    location = approve(auth_url, COMPANIES[0][0]).headers["Location"]
    code = parse_qs(urlparse(location).query)["code"][0]
    token_url = f"{env.url}/oauth2/v1/tokens/bearer"
    wrong_uri = requests.post(
        token_url,
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT + "x"},
        auth=("test-client", "test-secret"),
        timeout=5,
    )
    assert wrong_uri.status_code == 400
    assert wrong_uri.json()["error"] == "invalid_grant"
    other = requests.post(
        token_url,
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT},
        auth=("other-client", "other-secret"),
        timeout=5,
    )
    assert other.status_code == 400
    # client_secret_post works for the right client.
    ok = requests.post(
        token_url,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "client_id": "test-client",
            "client_secret": "test-secret",
        },
        timeout=5,
    )
    assert ok.status_code == 200, ok.text
    body = ok.json()
    assert list(body) == [
        "token_type",
        "expires_in",
        "refresh_token",
        "x_refresh_token_expires_in",
        "access_token",
    ]
    assert body["token_type"] == "bearer"
    assert ok.headers["Cache-Control"] == "no-store"


def test_bad_client_credentials_get_invalid_client(env: Env) -> None:
    register(env.url)
    token_url = f"{env.url}/oauth2/v1/tokens/bearer"
    for auth_header in (
        "Basic " + base64.b64encode(b"test-client:wrong").decode(),
        "Basic " + base64.b64encode(b"nobody:test-secret").decode(),
        "Basic !!!not-base64",
    ):
        response = requests.post(
            token_url,
            data={"grant_type": "refresh_token", "refresh_token": "x"},
            headers={"Authorization": auth_header},
            timeout=5,
        )
        assert response.status_code == 401
        assert response.json() == {"error": "invalid_client"}
    no_auth = requests.post(token_url, data={"grant_type": "refresh_token"}, timeout=5)
    assert no_auth.status_code == 401
    client = auth_client(env.url, secret="wrong")
    with pytest.raises(AuthClientError) as excinfo:
        client.refresh(refresh_token="whatever")
    assert excinfo.value.status_code == 401


def test_unsupported_grant_type(env: Env) -> None:
    register(env.url)
    response = requests.post(
        f"{env.url}/oauth2/v1/tokens/bearer",
        data={"grant_type": "password"},
        auth=("test-client", "test-secret"),
        timeout=5,
    )
    assert response.status_code == 400
    assert response.json() == {"error": "unsupported_grant_type"}


def test_refresh_token_of_another_app_is_refused(env: Env) -> None:
    register(env.url)
    register(env.url, client_id="other-client", secret="other-secret")
    client = connect(env.url)
    other = auth_client(env.url, client_id="other-client", secret="other-secret")
    with pytest.raises(AuthClientError) as excinfo:
        other.refresh(refresh_token=client.refresh_token)
    assert excinfo.value.status_code == 400
    client.refresh()  # untouched


def test_sandbox_tokens_shortcut_connects_the_app(env: Env) -> None:
    register(env.url, webhook_url="http://127.0.0.1:1/hook")
    realm = COMPANIES[1][0]
    response = requests.post(
        f"{env.url}/_sandbox/tokens",
        json={"realm_id": realm, "client_id": "test-client"},
        timeout=5,
    )
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 3600
    assert env.oauth.authenticate(f"Bearer {body['access_token']}", realm) is None
    connections = env.oauth.apps_for_realm(realm)
    assert [c.client_id for c in connections] == ["test-client"]
    assert connections[0].webhook_url == "http://127.0.0.1:1/hook"
    assert connections[0].webhook_format == "legacy"
    assert connections[0].verifier_token
    # The refresh token from the shortcut works with intuit-oauth.
    client = auth_client(env.url)
    client.refresh(refresh_token=body["refresh_token"])
    assert client.access_token != body["access_token"]

    # Default app when client_id is omitted; unknown realm / client -> 404.
    default = requests.post(f"{env.url}/_sandbox/tokens", json={"realm_id": realm}, timeout=5)
    assert default.status_code == 200
    assert (
        requests.post(f"{env.url}/_sandbox/tokens", json={"realm_id": "404"}, timeout=5).status_code
        == 404
    )
    assert (
        requests.post(
            f"{env.url}/_sandbox/tokens", json={"realm_id": realm, "client_id": "x"}, timeout=5
        ).status_code
        == 404
    )
    assert requests.post(f"{env.url}/_sandbox/tokens", json={}, timeout=5).status_code == 400


def test_issue_tokens_in_process(env: Env) -> None:
    tokens = env.oauth.issue_tokens(COMPANIES[0][0])
    assert env.oauth.authenticate(f"Bearer {tokens['access_token']}", COMPANIES[0][0]) is None
    with pytest.raises(KeyError):
        env.oauth.issue_tokens(COMPANIES[0][0], client_id="missing")


def test_app_registry(env: Env) -> None:
    created = register(
        env.url,
        client_id="c1",
        secret="s1",
        webhook_url="http://127.0.0.1:1/h",
        verifier_token="vt",
        webhook_format="cloudevents",
        name="My App",
    )
    assert created == {
        "client_id": "c1",
        "client_secret": "s1",
        "redirect_uris": [REDIRECT],
        "name": "My App",
        "webhook_url": "http://127.0.0.1:1/h",
        "verifier_token": "vt",
        "webhook_format": "cloudevents",
    }
    listed = requests.get(f"{env.url}/_sandbox/apps", timeout=5).json()["apps"]
    assert {a["client_id"] for a in listed} >= {"c1", "sandbox-client-id"}
    for bad in (
        {"client_id": "c2", "client_secret": "s", "redirect_uris": []},
        {"client_id": "", "client_secret": "s", "redirect_uris": [REDIRECT]},
        {
            "client_id": "c2",
            "client_secret": "s",
            "redirect_uris": [REDIRECT],
            "webhook_format": "xml",
        },
    ):
        assert requests.post(f"{env.url}/_sandbox/apps", json=bad, timeout=5).status_code == 400
    # A generated verifier token when none is given.
    generated = register(env.url, client_id="c3", secret="s3")
    assert len(generated["verifier_token"]) >= 20


def test_reset_forgets_tokens_and_apps(env: Env) -> None:
    register(env.url)
    client = connect(env.url)
    env.oauth.reset()
    assert env.oauth.authenticate(f"Bearer {client.access_token}", COMPANIES[0][0]) is not None
    assert env.oauth.get_app("test-client") is None
    assert env.oauth.get_app("sandbox-client-id") is not None
    assert env.oauth.token_endpoint_calls == 0


def test_userinfo_requires_a_live_token(env: Env) -> None:
    response = requests.get(
        f"{env.url}/v1/openid_connect/userinfo", headers={"Authorization": "Bearer x"}, timeout=5
    )
    assert response.status_code == 401


@pytest.mark.browser
def test_consent_page_in_a_real_browser(env: Env) -> None:
    """Chromium picks a company and clicks Connect; the redirect carries code/state/realmId."""
    from playwright import sync_api as playwright_api

    from tests.support.browser import launch_chromium

    register(env.url, name="Browser App")
    client = auth_client(env.url)
    auth_url = client.get_authorization_url([Scopes.ACCOUNTING, Scopes.OPENID], state_token="b1")
    landed: list[str] = []
    with playwright_api.sync_playwright() as pw:
        browser = launch_chromium(pw)
        page = browser.new_page()
        page.route(
            lambda url: url.startswith(REDIRECT),
            lambda route: (landed.append(route.request.url), route.fulfill(body="ok")),
        )
        page.goto(auth_url)
        assert page.get_by_text("Browser App").first.is_visible()
        page.get_by_label("Acme & Widgets").check()
        page.get_by_role("button", name="Connect").click()
        page.wait_for_url(lambda url: url.startswith(REDIRECT))
        browser.close()
    assert len(landed) == 1
    query = parse_qs(urlparse(landed[0]).query)
    assert query["state"] == ["b1"] and query["realmId"] == [COMPANIES[1][0]]
    client.get_bearer_token(query["code"][0], realm_id=COMPANIES[1][0])
    assert env.oauth.authenticate(f"Bearer {client.access_token}", COMPANIES[1][0]) is None
