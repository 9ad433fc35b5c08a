"""Shared fixtures for sandbox tests. Names are stable; other sandbox test modules may use them.

- ``sandbox(sandbox_app)`` -> the :class:`qbo_sandbox.app.Sandbox` behind the app.
- ``make_company(sandbox_app)`` -> factory ``make_company(**payload) -> Api`` creating a company
  through ``POST /_sandbox/companies`` and returning an in-process :class:`Api` with a token.
- ``api(make_company)`` -> an :class:`Api` for a fresh US company.
- ``live(sandbox_url)`` -> a :class:`LiveRealm` (realm id, tokens, base URL) over real HTTP.
- ``qb(live)`` -> an unmodified python-quickbooks ``QuickBooks`` client pointed at the sandbox.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from qbo_sandbox import get_sandbox
from qbo_sandbox.oauth import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_REDIRECT_URIS


class Api:
    """In-process calls to one realm's ``/v3`` API through Flask's test client."""

    def __init__(self, client: Any, realm: str, token: str) -> None:
        self.client = client
        self.realm = realm
        self.token = token

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}

    def url(self, path: str) -> str:
        return f"/v3/company/{self.realm}/{path.lstrip('/')}"

    def get(self, path: str, **params: Any) -> Any:
        params.setdefault("minorversion", "75")
        return self.client.get(self.url(path), headers=self.headers, query_string=params)

    def post(self, path: str, body: Any, **params: Any) -> Any:
        params.setdefault("minorversion", "75")
        return self.client.post(self.url(path), headers=self.headers, json=body,
                                query_string=params)

    def query(self, text: str) -> Any:
        return self.client.post(self.url("query"), headers={**self.headers,
                                "Content-Type": "application/text"}, data=text,
                                query_string={"minorversion": "75"})

    def create(self, entity: str, body: dict[str, Any], **params: Any) -> dict[str, Any]:
        """POST and return the entity; fails the test on anything but 200."""
        resp = self.post(entity.lower(), body, **params)
        assert resp.status_code == 200, resp.get_data(as_text=True)
        return resp.get_json()[entity]

    def read(self, entity: str, entity_id: str) -> dict[str, Any]:
        resp = self.get(f"{entity.lower()}/{entity_id}")
        assert resp.status_code == 200, resp.get_data(as_text=True)
        return resp.get_json()[entity]

    def customer(self, name: str, **extra: Any) -> dict[str, Any]:
        return self.create("Customer", {"DisplayName": name, **extra})

    def invoice(self, customer_id: str, *amounts: float, **extra: Any) -> dict[str, Any]:
        lines = [{"DetailType": "SalesItemLineDetail", "Amount": a,
                  "SalesItemLineDetail": {"ItemRef": {"value": "1"}}} for a in amounts]
        return self.create("Invoice", {"CustomerRef": {"value": customer_id}, "Line": lines,
                                       **extra})


def fault_code(resp: Any) -> str:
    """The first Fault error code of a JSON response."""
    return resp.get_json()["Fault"]["Error"][0]["code"]


@pytest.fixture
def sandbox(sandbox_app: Any) -> Any:
    return get_sandbox(sandbox_app)


@pytest.fixture
def make_company(sandbox_app: Any) -> Callable[..., Api]:
    client = sandbox_app.test_client()
    sb = get_sandbox(sandbox_app)

    def make(**payload: Any) -> Api:
        resp = client.post("/_sandbox/companies", json=payload)
        assert resp.status_code == 201, resp.get_data(as_text=True)
        realm = resp.get_json()["realmId"]
        token = sb.oauth.issue_tokens(realm)["access_token"]
        return Api(client, realm, token)

    return make


@pytest.fixture
def api(make_company: Callable[..., Api]) -> Api:
    return make_company(name="Test Co")


@dataclass
class LiveRealm:
    """A company reached over HTTP: ``base`` is the sandbox URL, ``v3`` the realm's API root."""

    base: str
    realm: str
    access_token: str
    refresh_token: str

    @property
    def v3(self) -> str:
        return f"{self.base}/v3/company/{self.realm}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}", "Accept": "application/json"}


@pytest.fixture
def live(sandbox_url: str) -> LiveRealm:
    resp = requests.post(f"{sandbox_url}/_sandbox/companies", json={"name": "Live Co"}, timeout=10)
    assert resp.status_code == 201, resp.text
    realm = resp.json()["realmId"]
    tokens = requests.post(f"{sandbox_url}/_sandbox/tokens", json={"realm_id": realm}, timeout=10)
    assert tokens.status_code == 200, tokens.text
    body = tokens.json()
    return LiveRealm(sandbox_url, realm, body["access_token"], body["refresh_token"])


@pytest.fixture
def qb(live: LiveRealm, monkeypatch: pytest.MonkeyPatch) -> Any:
    """python-quickbooks, unmodified, authenticated through intuit-oauth against the sandbox.

    requests-oauthlib refuses plain http unless OAUTHLIB_INSECURE_TRANSPORT is set.
    """
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    from intuitlib.client import AuthClient
    from quickbooks import QuickBooks

    auth = AuthClient(
        DEFAULT_CLIENT_ID,
        DEFAULT_CLIENT_SECRET,
        DEFAULT_REDIRECT_URIS[0],
        environment=f"{live.base}/.well-known/openid_configuration",
        access_token=live.access_token,
        refresh_token=live.refresh_token,
    )
    client = QuickBooks(auth_client=auth, refresh_token=live.refresh_token,
                        company_id=live.realm, minorversion=75)
    client.api_url_v3 = f"{live.base}/v3"
    client.sandbox_api_url_v3 = f"{live.base}/v3"
    return client
