"""The one way plugin code gets a QBO client for a connection: tokens from the database (refreshed
single-flight through Redis), the shared per-realm limiter, the configured API base."""

from __future__ import annotations

from crm_qbo_plugin.qbo import QboClient, StaticTokenSource, TokenManager
from crm_qbo_plugin.runtime.services import Services
from crm_qbo_plugin.store.token_store import DbTokenStore


def token_manager(state: Services, realm_id: str) -> TokenManager:
    return TokenManager(realm_id, DbTokenStore(state.engine, state.cipher), state.token_endpoint, state.redis)


def client_for(state: Services, realm_id: str) -> QboClient:
    return QboClient(state.settings.api_base_url, realm_id, token_manager(state, realm_id), limiter=state.limiter)


def client_with_token(state: Services, realm_id: str, access_token: str) -> QboClient:
    """A client for a connection not saved yet (reading company facts during connect)."""
    return QboClient(state.settings.api_base_url, realm_id, StaticTokenSource(access_token), limiter=state.limiter)
