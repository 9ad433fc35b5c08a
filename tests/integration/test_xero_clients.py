"""The client factory by provider: a Xero connection gets a XeroClient on its organisation, with
its rotating tokens kept (encrypted) on the connection row; QuickBooks' scheduled jobs never
take a Xero connection."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from datetime import timedelta

import pytest
from sqlmodel import Session, select

from crm_qbo_plugin.onboarding.keepalive import refresh_idle_connections
from crm_qbo_plugin.qbo import QboClient
from crm_qbo_plugin.reconcile.run import reconcile
from crm_qbo_plugin.runtime.clients import books_client
from crm_qbo_plugin.state import get_state
from crm_qbo_plugin.store.connections import connected, connection_for
from crm_qbo_plugin.store.tables import Connection
from crm_qbo_plugin.store.types import utcnow
from crm_qbo_plugin.xero import XeroClient
from tests.support.crm_stack import crm_stack
from tests.support.xero_stack import xero_crm_stack, xero_sandbox


@pytest.fixture
def xero_url() -> Iterator[str]:
    with xero_sandbox() as url:
        yield url


def _row(app, tenant: str) -> Connection:
    with Session(get_state(app).engine) as db:
        return db.exec(select(Connection).where(Connection.tenant_id == tenant)).one()


def test_a_xero_connection_gets_a_xero_client_whose_rotated_tokens_are_saved(plugin_config, xero_url):
    with xero_crm_stack(plugin_config, xero_url) as stack:
        state = get_state(stack.app)
        before = _row(stack.app, stack.tenant)
        assert (before.provider, before.realm_id, before.home_currency, before.country) == ("xero", stack.org, "NZD", "NZ")
        stack.control("POST", "clock", advance_seconds=31 * 60)  # the access token has expired at Xero
        with stack.app.app_context(), closing(books_client(state, before)) as client:
            assert isinstance(client, XeroClient)
            assert client.tenant_id == stack.org
            assert client.organisation()["BaseCurrency"] == "NZD"  # after one refresh
        after = _row(stack.app, stack.tenant)
        assert after.refresh_token_enc != before.refresh_token_enc
        assert state.cipher.decrypt(after.refresh_token_enc or "") != state.cipher.decrypt(before.refresh_token_enc or "")
        with stack.xero() as again:  # another worker, with the rotated pair from the database
            assert again.organisation()["BaseCurrency"] == "NZD"


def test_quickbooks_scheduled_jobs_never_take_a_xero_connection(plugin_config, xero_url):
    with xero_crm_stack(plugin_config, xero_url) as stack:
        state = get_state(stack.app)
        with stack.app.app_context():
            assert connected(state.engine) == []
            assert [c.tenant_id for c in connected(state.engine, "xero")] == [stack.tenant]
            # Xero refresh tokens live 60 days, within QuickBooks' keepalive window: it must not
            # hand them to Intuit (which would refuse them and mark the connection needs reconnect).
            assert refresh_idle_connections(state) == 0
        row = connection_for(state.engine, stack.tenant)
        assert row is not None and row.status == "connected"


def test_a_quickbooks_connection_still_gets_a_quickbooks_client(plugin_config, sandbox_url):
    with crm_stack(plugin_config, sandbox_url) as qbo_stack:
        row = connection_for(get_state(qbo_stack.app).engine, qbo_stack.tenant)
        assert row is not None and row.provider == "quickbooks"
        with qbo_stack.app.app_context(), books_client(get_state(qbo_stack.app), row) as client:
            assert isinstance(client, QboClient)


def test_an_idle_xero_connection_is_kept_alive_by_xero_not_by_intuit(plugin_config, xero_url):
    with xero_crm_stack(plugin_config, xero_url) as stack:
        state = get_state(stack.app)
        with Session(state.engine) as db:
            row = db.exec(select(Connection).where(Connection.tenant_id == stack.tenant)).one()
            before = row.refresh_token_enc
            assert row.refresh_expires_at is not None
            row.refresh_expires_at = utcnow() + timedelta(days=20)  # a month unused: under 30 days left
            db.add(row)
            db.commit()
        with stack.app.app_context():
            assert refresh_idle_connections(state) == 1
        after = _row(stack.app, stack.tenant)
        assert after.status == "connected" and after.refresh_token_enc != before
        assert after.refresh_expires_at is not None and after.refresh_expires_at > utcnow() + timedelta(days=59)
        with stack.xero() as xero:
            assert xero.organisation()["BaseCurrency"] == "NZD"


def test_reconcile_compares_a_xero_location_with_its_organisation(plugin_config, xero_url):
    with xero_crm_stack(plugin_config, xero_url) as stack, stack.app.app_context():
        report = reconcile(get_state(stack.app), stack.tenant)
    assert (report.books, report.matches, report.result.compared) == (
        "Xero", True, {"contacts": 0, "invoices": 0, "sales_receipts": 0, "payments": 0})
