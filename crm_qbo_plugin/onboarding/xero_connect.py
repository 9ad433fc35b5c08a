"""Connect a location to a Xero organisation: the consent URL (OAuth code flow with PKCE), the
callback, and storing the connection (provider xero; its `realm_id` is the organisation's tenant id).

The state is QuickBooks' (single use, short-lived, bound to session, user and tenant, stored as a
hash); the PKCE verifier waits beside it, encrypted with the token keys. Every refusal happens
before anything is stored, and a grant Xero made for an attempt we refuse is revoked.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Mapping
from contextlib import closing
from datetime import datetime

from sqlalchemy.exc import IntegrityError

from crm_qbo_plugin.host import HostUser
from crm_qbo_plugin.onboarding.lifecycle import INVALID_STATE, ConnectRefused, after_connect
from crm_qbo_plugin.runtime.clients import xero_client_with_token
from crm_qbo_plugin.runtime.services import Services
from crm_qbo_plugin.store.connections import connection_for, connection_of_realm, store_connection
from crm_qbo_plugin.store.oauth_state import consume_state, issue_state
from crm_qbo_plugin.store.tables import Connection
from crm_qbo_plugin.store.types import Provider, utcnow
from crm_qbo_plugin.xero import Tokens, XeroError, XeroIdentity

log = logging.getLogger(__name__)

NOT_CONFIGURED = ConnectRefused("xero_not_configured", "This CRM is not set up to connect to Xero.")


def _identity(state: Services) -> XeroIdentity:
    if state.xero_identity is None or not state.settings.xero_redirect_uri:
        raise NOT_CONFIGURED
    return state.xero_identity


def xero_authorization_url(state: Services, user: HostUser, session_nonce: str, *, switch_company: bool = False,
                           import_invoices: bool = False, now: datetime | None = None) -> str:
    """Where to send the browser to connect `user.tenant` to Xero; state and verifier are stored first."""
    identity = _identity(state)
    request = identity.authorization_request(str(state.settings.xero_redirect_uri))
    issue_state(state.engine, user, session_nonce, now or utcnow(), switch_company=switch_company,
                import_invoices=import_invoices,
                value=request.state, provider=Provider.XERO.value,
                code_verifier_enc=state.cipher.encrypt(request.code_verifier))
    return request.url


def complete_xero_connect(state: Services, user: HostUser, session_nonce: str | None, params: Mapping[str, str],
                          now: datetime | None = None) -> Connection:
    """Handle Xero's callback. Raises ConnectRefused (nothing stored) or returns the connection."""
    now = now or utcnow()
    identity = _identity(state)
    intent = consume_state(state.engine, params.get("state"), user, session_nonce, now)
    if intent is None or intent.provider != Provider.XERO.value or not intent.code_verifier_enc:
        raise INVALID_STATE
    if params.get("error"):
        raise ConnectRefused("cancelled", "Xero was not connected: the request was cancelled at Xero.")
    code = params.get("code", "")
    if not code or len(code) > 512:
        raise ConnectRefused("bad_callback", "Xero did not complete the connection. Start again from the card.")
    tokens = identity.exchange_code(code, str(state.settings.xero_redirect_uri),
                                    state.cipher.decrypt(intent.code_verifier_enc))
    try:
        org = _chosen_organisation(identity, tokens)
        current = connection_for(state.engine, user.tenant)
        owner = connection_of_realm(state.engine, org)
        if owner is not None and owner.tenant_id != user.tenant:
            raise ConnectRefused("company_taken", "This Xero organisation is already connected to another location. "
                                                  "Disconnect it there first, or choose another organisation.")
        switching = current is not None and current.pinned_realm_id not in (None, org)
        if switching and not intent.switch_company:
            raise ConnectRefused("switch_required", "This location is set up with a different company. To connect "
                                 "another one, choose Switch company: links to the old company's records are "
                                 "cleared and the sync starts fresh.")
        row = save_xero_connection(state, user.tenant, org, tokens, now=now, switching=switching,
                                   import_invoices=intent.import_invoices)
    except Exception:
        _revoke_quietly(identity, tokens.refresh_token)
        raise
    after_connect(state, user.tenant, now, same_company=current is not None and current.pinned_realm_id == org)
    log.info("connection.connected provider=xero switching=%s", switching)
    return row


def _chosen_organisation(identity: XeroIdentity, tokens: Tokens) -> str:
    """The organisation this consent connected: the connection made by the token's
    authentication event (Xero lists every organisation the app is connected to)."""
    event = _claim(tokens.access_token, "authentication_event_id")
    try:
        connections = [c for c in identity.connections(tokens.access_token) if c.tenant_type == "ORGANISATION"]
    except XeroError:
        raise ConnectRefused("company_unreadable", "Connected, but Xero would not list the organisation. "
                             "Try again.") from None
    chosen = [c for c in connections if event and c.auth_event_id == event] or connections
    if len(chosen) != 1:
        raise ConnectRefused("choose_one", "Choose exactly one Xero organisation when connecting.")
    return chosen[0].tenant_id


def _claim(access_token: str, name: str) -> str | None:
    """A claim of the access token (a JWT straight from Xero's token endpoint; read, not trusted
    for anything but picking among the connections Xero itself lists)."""
    try:
        payload = access_token.split(".")[1]
        value = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))).get(name)
    except (IndexError, ValueError, AttributeError):
        return None
    return str(value) if value else None


def _revoke_quietly(identity: XeroIdentity, refresh_token: str) -> None:
    try:
        identity.revoke(refresh_token)
    except XeroError as exc:
        log.warning("connection.revoke_failed after=refused_connect provider=xero error=%s", type(exc).__name__)


# The organisation's default for sales ("DefaultSalesTax") → the LineAmountTypes its invoices get.
SALES_TAX_DEFAULTS = {"Tax Exclusive": "Exclusive", "Tax Inclusive": "Inclusive", "No Tax": "NoTax"}


def line_amount_types(default_sales_tax: object) -> str:
    """How the organisation prices its sales (kept as the connection's `tax_model`), so the CRM's
    invoices look like its own: Exclusive unless it says Inclusive or NoTax."""
    return SALES_TAX_DEFAULTS.get(str(default_sales_tax or ""), "Exclusive")


def save_xero_connection(state: Services, tenant: str, org_id: str, tokens: Tokens, *, now: datetime,
                         switching: bool = False, import_invoices: bool = False) -> Connection:
    """Read the organisation with the new access token, then store the connection in one
    transaction; ConnectRefused if Xero will not share it or another tenant took it meanwhile."""
    try:
        with closing(xero_client_with_token(state, org_id, tokens.access_token)) as xero:
            org = xero.organisation()
    except XeroError:
        raise ConnectRefused("company_unreadable", "Connected, but Xero would not share the organisation's "
                             "settings. Try again.") from None
    company = {"company_name": str(org.get("Name") or "")[:1024] or None,
               "country": str(org.get("CountryCode") or "")[:8] or None,
               "home_currency": str(org.get("BaseCurrency") or "")[:3].upper() or None,
               "multicurrency": False, "custom_txn_numbers": True,
               "tax_model": line_amount_types(org.get("DefaultSalesTax"))}
    try:
        return store_connection(state.engine, tenant, org_id, tokens, state.cipher, company=company,
                                defaults=state.manifest.defaults(), switching=switching, import_invoices=import_invoices,
                                now=now, provider=Provider.XERO.value)
    except IntegrityError:
        raise ConnectRefused("company_taken", "This Xero organisation is already connected to another location.") from None
