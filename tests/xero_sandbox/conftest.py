"""A fresh xero_sandbox on a loopback port per test, and both SDKs pointed at it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.xero_sandbox.support import (
    CLIENT_ID,
    CLIENT_SECRET,
    SCOPE,
    connect,
    create_org,
    register_app,
)


@pytest.fixture
def xero_app():
    from xero_sandbox import create_app

    return create_app(aggregation_seconds=0)


@pytest.fixture
def xero_url(xero_app) -> Iterator[str]:
    from xero_sandbox.server import serve_in_thread

    with serve_in_thread(xero_app) as url:
        yield url


@pytest.fixture
def tenant_id(xero_url: str) -> str:
    """One NZ organisation and the test app registered (not yet connected)."""
    tenant = create_org(xero_url, country="NZ")
    register_app(xero_url)
    return tenant


@pytest.fixture
def sdk_urls(xero_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point xero-python's TokenApi and pyxero's module constants at the sandbox."""
    import xero.auth
    from xero_python.api_client.oauth2 import TokenApi

    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    monkeypatch.setattr(TokenApi, "refresh_token_url", f"{xero_url}/connect/token")
    monkeypatch.setattr(TokenApi, "client_credentials_token_url", f"{xero_url}/connect/token")
    monkeypatch.setattr(TokenApi, "revoke_token_url", f"{xero_url}/connect/revocation")
    monkeypatch.setattr(xero.auth, "XERO_OAUTH2_TOKEN_URL", f"{xero_url}/connect/token")
    monkeypatch.setattr(xero.auth, "XERO_OAUTH2_AUTHORIZE_URL",
                        f"{xero_url}/identity/connect/authorize")
    return xero_url


class XeroPython:
    """xero-python's ApiClient with a token store, AccountingApi and IdentityApi."""

    def __init__(self, base_url: str, token: dict[str, Any]) -> None:
        from xero_python.accounting import AccountingApi
        from xero_python.api_client import ApiClient, Configuration
        from xero_python.api_client.oauth2 import OAuth2Token
        from xero_python.identity import IdentityApi

        # an app's stored token carries scope as a list (what oauthlib and XP's refresh keep)
        self.store: dict[str, Any] = {"token": dict(token, scope=token["scope"].split())}
        self.client = ApiClient(Configuration(oauth2_token=OAuth2Token(
            client_id=CLIENT_ID, client_secret=CLIENT_SECRET)), pool_threads=1)
        self.client.oauth2_token_getter(lambda: self.store["token"])
        self.client.oauth2_token_saver(lambda t: self.store.update(token=t))
        self.accounting = AccountingApi(self.client, base_url=f"{base_url}/api.xro/2.0")
        self.identity = IdentityApi(self.client, base_url=base_url)


@pytest.fixture
def xp(sdk_urls: str, tenant_id: str) -> XeroPython:
    """xero-python, connected to the organisation."""
    return XeroPython(sdk_urls, connect(sdk_urls, tenant_ids=[tenant_id]))


@pytest.fixture
def px(sdk_urls: str, tenant_id: str) -> Any:
    """pyxero's Xero object, connected to the organisation (tenant from GET /connections)."""
    from xero import Xero
    from xero.auth import OAuth2Credentials

    token = connect(sdk_urls, tenant_ids=[tenant_id])
    token["expires_at"] = 4102444800  # requests-oauthlib checks expiry on the client clock
    cred = OAuth2Credentials(CLIENT_ID, CLIENT_SECRET, token=token, scope=SCOPE)
    cred.base_url = sdk_urls
    cred.set_default_tenant()
    assert cred.tenant_id == tenant_id
    return Xero(cred)
