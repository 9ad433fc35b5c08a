"""The one way plugin code gets a QBO client for a connection: tokens from the database (refreshed
single-flight through Redis), the shared per-realm limiter, the configured API base, and the
client's 429s and token refreshes counted in the shared metrics."""

from __future__ import annotations

from crm_qbo_plugin import metrics
from crm_qbo_plugin.qbo import Counters, QboClient, StaticTokenSource, TokenManager
from crm_qbo_plugin.runtime.services import Services
from crm_qbo_plugin.store.token_store import DbTokenStore


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
