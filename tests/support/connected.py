"""Connect a tenant to a sandbox company without the browser (for tests of what comes after)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import requests
from flask import Flask
from sqlmodel import select

from crm_qbo_plugin.onboarding.company import company_facts
from crm_qbo_plugin.onboarding.lifecycle import save_connection
from crm_qbo_plugin.qbo import Tokens
from crm_qbo_plugin.runtime.clients import client_with_token
from crm_qbo_plugin.state import get_state
from crm_qbo_plugin.store.db import session
from crm_qbo_plugin.store.tables import Connection
from tests.support.sandbox_qbo import CLIENT_ID


def connect_directly(app: Flask, tenant: str, sandbox_url: str, realm_id: str, **settings: Any) -> Connection:
    """Connect `tenant` to `realm_id` as the OAuth callback would; settings override the defaults.

    The connection's cutoff is a second in the past, so events published right after count."""
    state = get_state(app)
    answer = requests.post(f"{sandbox_url}/_sandbox/tokens", json={"realm_id": realm_id, "client_id": CLIENT_ID}, timeout=10)
    answer.raise_for_status()
    tokens = Tokens.from_token_response(answer.json())
    with client_with_token(state, realm_id, tokens.access_token) as client:
        facts = company_facts(client.company_info(), client.preferences())
    now = datetime.now(UTC) - timedelta(seconds=1)
    save_connection(state, tenant, realm_id, tokens, facts, switching=False,
                    import_invoices=bool(settings.pop("import_invoices", False)), now=now)
    with session(state.engine) as db:
        row = db.exec(select(Connection).where(Connection.tenant_id == tenant)).one()
        if settings:
            row.settings = {**row.settings, **settings}
            db.add(row)
            db.commit()
        return row
