"""Store a completed Xero connection: the organisation's facts and the tokens Xero issued, on the
tenant's connection with provider xero (its `realm_id` is the organisation's tenant id)."""

from __future__ import annotations

from contextlib import closing
from datetime import datetime

from crm_qbo_plugin.runtime.clients import xero_client_with_token
from crm_qbo_plugin.runtime.services import Services
from crm_qbo_plugin.store.connections import store_connection
from crm_qbo_plugin.store.tables import Connection
from crm_qbo_plugin.store.types import Provider
from crm_qbo_plugin.xero import Tokens


def save_xero_connection(state: Services, tenant: str, org_id: str, tokens: Tokens, *, now: datetime,
                         switching: bool = False) -> Connection:
    """Read the organisation with the new access token, then store the connection in one
    transaction. Raises IntegrityError if the organisation belongs to another tenant."""
    with closing(xero_client_with_token(state, org_id, tokens.access_token)) as xero:
        org = xero.organisation()
    company = {"company_name": str(org.get("Name") or "")[:1024] or None,
               "country": str(org.get("CountryCode") or "")[:8] or None,
               "home_currency": str(org.get("BaseCurrency") or "")[:3].upper() or None,
               "multicurrency": False, "custom_txn_numbers": True, "tax_model": None}
    return store_connection(state.engine, tenant, org_id, tokens, state.cipher, company=company,
                            defaults=state.manifest.defaults(), switching=switching, import_invoices=False,
                            now=now, provider=Provider.XERO.value)
