"""XeroIdentity and TokenManager against the local Xero: the code flow with PKCE, connections,
refresh rotation with the 30-minute grace, and a rotated-out token used after it."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from crm_qbo_plugin.xero import SYNC_SCOPES, ReconnectRequired, Tokens
from tests.xero.conftest import CONNECTION, Xero, identity_for
from tests.xero_sandbox.support import REDIRECT_URI, approve, control, create_org, register_app


def _expired(tokens: Tokens) -> Tokens:
    return replace(tokens, access_expires_at=datetime.now(UTC) - timedelta(seconds=1))


def test_code_flow_with_pkce_then_connections_and_revoke(sandbox_url):
    tenant_id = create_org(sandbox_url, country="NZ", name="Kiwi Books")
    register_app(sandbox_url)
    identity = identity_for(sandbox_url)
    request = identity.authorization_request(REDIRECT_URI, SYNC_SCOPES, state="st-1")
    assert request.url.startswith(f"{sandbox_url}/identity/connect/authorize?response_type=code")
    assert "code_challenge_method=S256" in request.url and request.code_verifier not in request.url
    params = approve(request.url, tenant_id)
    assert params["state"] == "st-1"
    with pytest.raises(ReconnectRequired):  # a code bound to a challenge needs its verifier
        identity.exchange_code(params["code"], REDIRECT_URI, "x" * 64)
    request = identity.authorization_request(REDIRECT_URI, SYNC_SCOPES)
    params = approve(request.url, tenant_id)
    tokens = identity.exchange_code(params["code"], REDIRECT_URI, request.code_verifier)
    assert set(tokens.scope) == set(SYNC_SCOPES)
    assert tokens.access_expires_at - datetime.now(UTC) <= timedelta(seconds=1800)
    [connection] = identity.connections(tokens.access_token)
    assert (connection.tenant_id, connection.tenant_type, connection.tenant_name) == (
        tenant_id, "ORGANISATION", "Kiwi Books")
    with pytest.raises(ReconnectRequired):  # the code is single use
        identity.exchange_code(params["code"], REDIRECT_URI, request.code_verifier)
    identity.revoke(tokens.refresh_token)
    with pytest.raises(ReconnectRequired):
        identity.connections(tokens.access_token)
    with pytest.raises(ReconnectRequired):
        identity.refresh(tokens.refresh_token)


def test_delete_connection(xero: Xero):
    access = xero.tokens.access_token()
    [connection] = xero.identity.connections(access)
    assert xero.identity.delete_connection(access, connection.id) is True
    assert xero.identity.delete_connection(access, connection.id) is False
    assert xero.identity.connections(access) == []


def test_refresh_rotates_and_the_old_token_works_only_within_the_grace(xero: Xero):
    first = xero.store.load(CONNECTION)
    assert first is not None
    rotated = xero.identity.refresh(first.refresh_token)
    assert rotated.refresh_token != first.refresh_token
    # the answer was lost: the old token still works for 30 minutes (and rotates again)
    control(xero.url, "POST", "clock", advance_seconds=1799)
    again = xero.identity.refresh(first.refresh_token)
    assert again.refresh_token not in (first.refresh_token, rotated.refresh_token)
    control(xero.url, "POST", "clock", advance_seconds=2)
    with pytest.raises(ReconnectRequired) as caught:
        xero.identity.refresh(first.refresh_token)
    assert "invalid_grant" in str(caught.value)
    assert xero.identity.refresh(again.refresh_token).refresh_token  # the newest one lives on


def test_the_manager_saves_the_new_pair_and_a_lost_save_is_healed_by_the_grace(xero: Xero):
    first = xero.store.load(CONNECTION)
    assert first is not None
    xero.store.save(CONNECTION, _expired(first))
    assert xero.client.organisation()["Name"] == "Acme Ltd"
    saved = xero.store.load(CONNECTION)
    assert saved is not None and xero.tokens.refreshes == 1
    assert saved.refresh_token != first.refresh_token and saved.access_valid_for(1700)
    # a worker refreshed and crashed before saving: the store still holds the superseded token
    xero.identity.refresh(saved.refresh_token)
    xero.store.save(CONNECTION, _expired(saved))
    control(xero.url, "POST", "clock", advance_seconds=1500)
    assert xero.new_worker().organisation()["Name"] == "Acme Ltd"
    healed = xero.store.load(CONNECTION)
    assert healed is not None and healed.refresh_token != saved.refresh_token
    assert xero.tokens.refreshes == 1


def test_a_rotated_out_token_after_the_grace_needs_a_reconnect(xero: Xero):
    first = xero.store.load(CONNECTION)
    assert first is not None
    xero.identity.refresh(first.refresh_token)  # rotated; the new pair never reached the store
    xero.store.save(CONNECTION, _expired(first))
    control(xero.url, "POST", "clock", advance_seconds=1801)
    saves = xero.store.saves
    with pytest.raises(ReconnectRequired):
        xero.client.organisation()
    stored = xero.store.load(CONNECTION)
    assert xero.store.saves == saves  # nothing half-written
    assert stored is not None and stored.refresh_token == first.refresh_token


def test_a_401_refreshes_once_and_retries(xero: Xero):
    assert xero.client.organisation()["Name"] == "Acme Ltd"
    assert control(xero.url, "POST", "tokens/expire")["expired"] == 1
    assert xero.client.organisation()["Name"] == "Acme Ltd"
    assert xero.tokens.refreshes == 1


def test_workers_refreshing_together_call_xero_once(xero: Xero):
    import threading

    import redis

    from crm_qbo_plugin.xero import TokenManager

    first = xero.store.load(CONNECTION)
    assert first is not None
    xero.store.save(CONNECTION, _expired(first))
    calls_before = control(xero.url, "GET", "stats")["token_endpoint_calls"]
    workers = [TokenManager(CONNECTION, xero.store, xero.identity, redis.Redis(
        connection_pool=xero.redis.connection_pool)) for _ in range(4)]
    tokens: list[str] = []
    threads = [threading.Thread(target=lambda w=w: tokens.append(w.access_token()))
               for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert control(xero.url, "GET", "stats")["token_endpoint_calls"] == calls_before + 1
    stored = xero.store.load(CONNECTION)
    assert stored is not None and tokens == [stored.access_token] * 4
    assert sum(w.refreshes for w in workers) == 1


def test_a_pkce_app_without_a_secret_connects_and_refreshes(sandbox_url):
    from crm_qbo_plugin.xero import XeroIdentity

    tenant_id = create_org(sandbox_url, country="AU")
    register_app(sandbox_url, client_id="PKCEAPP", client_secret=None)
    identity = XeroIdentity("PKCEAPP", None, login_url=sandbox_url, identity_url=sandbox_url,
                            api_url=sandbox_url)
    request = identity.authorization_request(REDIRECT_URI, SYNC_SCOPES)
    params = approve(request.url, tenant_id)
    tokens = identity.exchange_code(params["code"], REDIRECT_URI, request.code_verifier)
    assert [c.tenant_id for c in identity.connections(tokens.access_token)] == [tenant_id]
    rotated = identity.refresh(tokens.refresh_token)
    assert rotated.refresh_token != tokens.refresh_token
    identity.revoke(rotated.refresh_token)
    with pytest.raises(ReconnectRequired):
        identity.refresh(rotated.refresh_token)
