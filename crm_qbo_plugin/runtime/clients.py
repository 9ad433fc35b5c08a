"""The one way plugin code gets a books client for a connection: tokens from the database (refreshed
single-flight through Redis), the shared per-company limiter, the configured API base, and the
client's 429s and token refreshes counted in the shared metrics.

`books_client` is the one dispatch point by provider: a QuickBooks connection gets a QboClient, a
Xero one a XeroClient (keyed by the organisation's tenant id, which `Connection.realm_id` holds)."""

from __future__ import annotations

from collections.abc import Callable

from crm_qbo_plugin import metrics
from crm_qbo_plugin.qbo import Counters, QboClient, StaticTokenSource, TokenManager
from crm_qbo_plugin.runtime.services import Services
from crm_qbo_plugin.settings import Settings
from crm_qbo_plugin.store.tables import Connection
from crm_qbo_plugin.store.token_store import DbTokenStore
from crm_qbo_plugin.store.types import Provider
from crm_qbo_plugin.xero import ReconnectRequired as XeroReconnectRequired
from crm_qbo_plugin.xero import TokenManager as XeroTokenManager
from crm_qbo_plugin.xero import Tokens as XeroTokens
from crm_qbo_plugin.xero import XeroClient, XeroIdentity

BooksClient = QboClient | XeroClient


def token_manager(state: Services, realm_id: str) -> TokenManager:
    return TokenManager(realm_id, DbTokenStore(state.engine, state.cipher), state.token_endpoint, state.redis,
                        on_refresh=lambda outcome: metrics.count(state.redis, "token_refreshes", outcome=outcome))


def _counters(state: Services) -> Counters:
    return Counters(observer=lambda name, n: metrics.count(state.redis, "throttled", n) if name == "throttled" else None)


def client_for(state: Services, realm_id: str) -> QboClient:
    return QboClient(state.settings.api_base_url, realm_id, token_manager(state, realm_id), limiter=state.limiter,
                     counters=_counters(state))


def client_with_token(state: Services, realm_id: str, access_token: str) -> QboClient:
    """A client for a connection not saved yet (reading company facts during connect)."""
    return QboClient(state.settings.api_base_url, realm_id, StaticTokenSource(access_token), limiter=state.limiter,
                     counters=_counters(state))


def xero_identity(settings: Settings) -> XeroIdentity | None:
    """Xero's identity service for the configured app (None when the host offers no Xero)."""
    if not settings.xero_client_id:
        return None
    if settings.xero_base_url:  # a local Xero serves login, identity and API at one address
        base = settings.xero_base_url
        return XeroIdentity(settings.xero_client_id, settings.xero_client_secret, login_url=base,
                            identity_url=base, api_url=base)
    return XeroIdentity(settings.xero_client_id, settings.xero_client_secret)


def xero_api_url(settings: Settings) -> str:
    return f"{settings.xero_base_url}/api.xro/2.0" if settings.xero_base_url else "https://api.xero.com/api.xro/2.0"


def xero_token_manager(state: Services, tenant_id: str) -> XeroTokenManager:
    """The tokens of the connection whose realm_id is the organisation `tenant_id`, refreshed
    single-flight like QuickBooks' (Xero rotates the refresh token on every refresh)."""
    if state.xero_identity is None:
        raise XeroReconnectRequired("this deployment has no Xero app configured (CRM_QBO_XERO_CLIENT_ID)")
    return XeroTokenManager(tenant_id, DbTokenStore(state.engine, state.cipher, XeroTokens), state.xero_identity,
                            state.redis,
                            on_refresh=lambda outcome: metrics.count(state.redis, "token_refreshes", outcome=outcome))


def xero_client_for(state: Services, tenant_id: str) -> XeroClient:
    """The client of one Xero organisation, with its connection's tokens."""
    return XeroClient(tenant_id, xero_token_manager(state, tenant_id), limiter=state.xero_limiter,
                      base_url=xero_api_url(state.settings))


def xero_client_with_token(state: Services, tenant_id: str, access_token: str) -> XeroClient:
    """A client for a Xero connection not saved yet (reading the organisation during connect)."""
    return XeroClient(tenant_id, StaticTokenSource(access_token), limiter=state.xero_limiter,
                      base_url=xero_api_url(state.settings))


CLIENTS: dict[str, Callable[[Services, str], BooksClient]] = {
    Provider.QUICKBOOKS.value: client_for,
    Provider.XERO.value: xero_client_for,
}


def books_client(state: Services, conn: Connection) -> BooksClient:
    """The client for the company `conn` is connected to, by its provider."""
    if not conn.realm_id:
        raise ValueError("the connection has no company")
    return CLIENTS[conn.provider](state, conn.realm_id)
