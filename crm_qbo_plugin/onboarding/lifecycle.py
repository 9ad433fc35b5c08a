"""Connect, reconnect, switch company, needs-reconnect and unlink.

Every refusal happens before anything is stored, and says what to do without naming anything the
user should not see (another location that owns the company, a token, an error body).
"""

from __future__ import annotations

import logging
import re
import urllib.parse
from collections.abc import Mapping
from datetime import datetime

import redis
from sqlalchemy.exc import IntegrityError

from crm_qbo_plugin.host import HostUser
from crm_qbo_plugin.inbound.enqueue import enqueue_poll, request_xero_poll
from crm_qbo_plugin.inbound.importer import import_open, start_import
from crm_qbo_plugin.onboarding.company import CompanyFacts, company_facts
from crm_qbo_plugin.outbound.sweeper import sweep_outbox
from crm_qbo_plugin.qbo import QboError, Tokens, discovery_document
from crm_qbo_plugin.runtime.clients import client_with_token
from crm_qbo_plugin.runtime.services import Services
from crm_qbo_plugin.store import inbox, outbox
from crm_qbo_plugin.store.connections import (
    connection_for,
    connection_of_realm,
    disconnect,
    store_connection,
)
from crm_qbo_plugin.store.oauth_state import consume_state, issue_state
from crm_qbo_plugin.store.tables import Connection
from crm_qbo_plugin.store.types import Provider, utcnow
from crm_qbo_plugin.xero import XeroError

log = logging.getLogger(__name__)

ACCOUNTING_SCOPE = "com.intuit.quickbooks.accounting"
REALM_ID = re.compile(r"^[0-9]{1,32}$")


class ConnectRefused(Exception):
    """The connect attempt was refused; `str(exc)` is safe to show the user."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


INVALID_STATE = ConnectRefused(
    "invalid_state", "This connection attempt is invalid or has expired. Start again from the QuickBooks card."
)


def get_connection(state: Services, tenant: str) -> Connection | None:
    return connection_for(state.engine, tenant)


def authorization_url(state: Services, user: HostUser, session_nonce: str, *, switch_company: bool = False,
                      import_invoices: bool = False, now: datetime | None = None) -> str:
    """Where to send the browser to connect `user.tenant`; the state is stored before we redirect."""
    value = issue_state(state.engine, user, session_nonce, now or utcnow(),
                        switch_company=switch_company, import_invoices=import_invoices)
    endpoint = discovery_document(state.settings.environment)["authorization_endpoint"]
    query = urllib.parse.urlencode({
        "client_id": state.settings.client_id,
        "response_type": "code",
        "scope": ACCOUNTING_SCOPE,
        "redirect_uri": state.settings.redirect_uri,
        "state": value,
    })
    return f"{endpoint}?{query}"


def complete_connect(state: Services, user: HostUser, session_nonce: str | None,
                     params: Mapping[str, str], now: datetime | None = None) -> Connection:
    """Handle the OAuth callback. Raises ConnectRefused (nothing stored) or returns the connection."""
    now = now or utcnow()
    intent = consume_state(state.engine, params.get("state"), user, session_nonce, now)
    if intent is None:
        raise INVALID_STATE
    if params.get("error"):
        raise ConnectRefused("cancelled", "QuickBooks was not connected: the request was cancelled at Intuit.")
    code, realm_id = params.get("code", ""), params.get("realmId", "")
    if not code or len(code) > 512 or not REALM_ID.match(realm_id):
        raise ConnectRefused("bad_callback", "QuickBooks did not say which company was chosen. Start again from the QuickBooks card.")

    current = get_connection(state, user.tenant)
    owner = _owner_of(state, realm_id)
    if owner is not None and owner != user.tenant:
        raise ConnectRefused(
            "company_taken",
            "This QuickBooks company is already connected to another location. Disconnect it there first, "
            "or choose another company.",
        )
    switching = current is not None and current.pinned_realm_id not in (None, realm_id)
    if switching and not intent.switch_company:
        raise ConnectRefused(
            "switch_required",
            "This location is set up with a different QuickBooks company. To connect another company, "
            "choose Switch company: links to the old company's records are cleared and the sync starts fresh.",
        )

    tokens = state.token_endpoint.exchange_code(code, state.settings.redirect_uri)
    try:
        row = _read_and_save(state, user.tenant, realm_id, tokens, switching=switching,
                             import_invoices=intent.import_invoices, now=now)
    except Exception:
        # Whatever refused or broke the connect after Intuit granted access (company unreadable,
        # company taken meanwhile, the database): nothing keeps these tokens, so the grant at
        # Intuit must not outlive the attempt either.
        _revoke_quietly(state, tokens.refresh_token)
        raise
    after_connect(state, user.tenant, now, same_company=current is not None and current.pinned_realm_id == realm_id)
    log.info("connection.connected switching=%s", switching)
    return row


def _read_and_save(state: Services, tenant: str, realm_id: str, tokens: Tokens, *, switching: bool,
                   import_invoices: bool, now: datetime) -> Connection:
    """Read the company's facts with the new tokens and store the connection; ConnectRefused if
    QuickBooks will not share the facts or another tenant took the company meanwhile."""
    try:
        with client_with_token(state, realm_id, tokens.access_token) as client:
            facts = company_facts(client.company_info(), client.preferences())
    except QboError as exc:
        raise ConnectRefused("company_unreadable", f"Connected, but QuickBooks would not share the company's settings ({exc.code}). Try again.") from None
    try:
        return save_connection(state, tenant, realm_id, tokens, facts, switching=switching,
                               import_invoices=import_invoices, now=now)
    except IntegrityError:  # another tenant took this realm a moment ago
        raise ConnectRefused("company_taken", "This QuickBooks company is already connected to another location.") from None


def _revoke_quietly(state: Services, refresh_token: str) -> None:
    try:
        state.token_endpoint.revoke(refresh_token)
    except QboError as exc:  # Intuit expires an unused grant too; the refusal is what the user needs
        log.warning("connection.revoke_failed after=refused_connect error=%s", exc.code or type(exc).__name__)


def save_connection(state: Services, tenant: str, realm_id: str, tokens: Tokens, facts: CompanyFacts, *,
                    switching: bool, import_invoices: bool, now: datetime) -> Connection:
    """Store a completed connection in one transaction (a company switch also clears links and
    cursors). Raises IntegrityError if the realm belongs to another tenant."""
    return store_connection(
        state.engine, tenant, realm_id, tokens, state.cipher, defaults=state.manifest.defaults(),
        switching=switching, import_invoices=import_invoices, now=now,
        company={"company_name": facts.name, "country": facts.country, "home_currency": facts.home_currency,
                 "multicurrency": facts.multicurrency, "custom_txn_numbers": facts.custom_txn_numbers,
                 "tax_model": facts.tax_model})


def _owner_of(state: Services, realm_id: str) -> str | None:
    row = connection_of_realm(state.engine, realm_id)
    return row.tenant_id if row else None


def after_connect(state: Services, tenant: str, now: datetime, *, same_company: bool) -> None:
    """What follows a stored connection (QuickBooks or Xero; the import job picks the provider's
    import): parked rows resume and the import runs. Back on the same
    company the records are linked already, so instead of importing everything again a poll reads
    what changed in the books while the location was disconnected (its webhooks reached no one; the
    CDC watermark was kept, and one older than CDC's 30 days falls back to a full reconcile); an
    import the disconnect interrupted is resumed."""
    resume_parked(state, tenant, now)
    connection = connection_for(state.engine, tenant)
    if same_company and connection is not None and connection.realm_id:
        revived = inbox.revive_orphans(state.engine, connection.realm_id, tenant, now)
        if revived:
            log.info("connection.notices_revived count=%d", revived)
    if same_company:
        try:
            if connection is not None and connection.provider == Provider.XERO.value and connection.id is not None:
                request_xero_poll(state, connection.id)  # the modified-since poll, from its kept watermarks
            else:
                enqueue_poll(state, tenant)
        except redis.RedisError as exc:  # the scheduler's next poll reads them
            log.warning("connection.poll_not_enqueued after=reconnect error=%s", type(exc).__name__)
    if not same_company or import_open(state, tenant):
        start_import(state, tenant)  # queued ahead of the poll (both go to the front): it runs first


def resume_parked(state: Services, tenant: str, now: datetime) -> None:
    """Rows parked while the connection needed reconnecting go back to the queue now."""
    outbox.due_now(state.engine, tenant, now, every_pending=True)  # expired: the sweep below takes them
    sweep_outbox(state, now=now)


def unlink(state: Services, tenant: str) -> bool:
    """Revoke at the provider (Intuit or Xero), forget the tokens, free the company; links are kept
    for a reconnect."""
    dropped = disconnect(state.engine, tenant, state.cipher)
    if dropped is None:
        return False
    if dropped.tokens_unreadable:
        log.warning("connection.unlink_without_revoke reason=tokens_unreadable")
    refresh = dropped.refresh_token
    if refresh:
        REVOKERS[dropped.provider](state, refresh)
    log.info("connection.unlinked")
    return True


def _revoke_at_intuit(state: Services, refresh: str) -> None:
    try:
        state.token_endpoint.revoke(refresh)
    except QboError as exc:  # the tokens are gone here either way; Intuit expires them too
        log.warning("connection.revoke_failed after=unlink error=%s tokens=deleted_locally", exc.code)


def _revoke_at_xero(state: Services, refresh: str) -> None:
    if state.xero_identity is None:  # the deployment dropped its Xero app: Xero expires the grant
        log.warning("connection.revoke_skipped after=unlink provider=xero reason=not_configured")
        return
    try:
        state.xero_identity.revoke(refresh)
    except XeroError as exc:  # the tokens are gone here either way; Xero expires them too
        log.warning("connection.revoke_failed after=unlink provider=xero error=%s tokens=deleted_locally",
                    type(exc).__name__)


# Where a dropped connection's grant is revoked, by its provider (a token never goes to the other).
REVOKERS = {Provider.QUICKBOOKS.value: _revoke_at_intuit, Provider.XERO.value: _revoke_at_xero}
