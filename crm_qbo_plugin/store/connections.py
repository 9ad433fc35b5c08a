"""Connections: the one place the plugin looks a tenant's or a realm's connection up, stores a
completed connection or a disconnect, and moves one between connected and needs-reconnect."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from crm_qbo_plugin.apiclient.tokens import Tokens as BaseTokens
from crm_qbo_plugin.crypto import TokenCipher, TokenDecryptionError
from crm_qbo_plugin.store import cursors, links, oauth_state
from crm_qbo_plugin.store.card_settings import CardSettings, card_settings, stored_with
from crm_qbo_plugin.store.db import session
from crm_qbo_plugin.store.tables import Connection, ConnectionStatus
from crm_qbo_plugin.store.token_store import write_tokens
from crm_qbo_plugin.store.types import Provider, utcnow


def connection_for(engine: Engine, tenant: str, db: Session | None = None) -> Connection | None:
    """The tenant's connection (any status), or None; in `db` when given, else in a session of its own."""
    query = select(Connection).where(Connection.tenant_id == tenant)
    if db is not None:
        return db.exec(query).first()
    with session(engine) as own:
        return own.exec(query).first()


def connection_of_realm(engine: Engine, realm_id: str, db: Session | None = None) -> Connection | None:
    """The connection that holds the realm (a realm belongs to one tenant at a time), or None."""
    query = select(Connection).where(Connection.realm_id == realm_id)
    if db is not None:
        return db.exec(query).first()
    with session(engine) as own:
        return own.exec(query).first()


def store_connection(engine: Engine, tenant: str, realm_id: str, tokens: BaseTokens, cipher: TokenCipher, *,
                     company: Mapping[str, Any], defaults: Mapping[str, Any], switching: bool,
                     import_invoices: bool, now: datetime, provider: str = Provider.QUICKBOOKS.value) -> Connection:
    """Store a completed connection in one transaction: `company` holds the company's facts (by
    Connection column), `realm_id` the company's id at `provider` (a Xero organisation's tenant
    id); a company switch also clears links and cursors. Raises IntegrityError if the realm
    belongs to another tenant."""
    with session(engine) as db:
        row = connection_for(engine, tenant, db)
        if row is None:
            row = Connection(tenant_id=tenant, settings=dict(defaults))
        if switching:
            links.forget_company(db, tenant, now)
            cursors.clear(db, tenant)
        if row.pinned_realm_id != realm_id:
            row.connected_at = now  # a new company: nothing from before this moment is pushed
        row.connected_at = row.connected_at or now
        row.realm_id = row.pinned_realm_id = realm_id
        row.provider = provider
        row.status = ConnectionStatus.CONNECTED.value
        row.last_error = None
        row.settings = stored_with(row.settings, {"import_invoices": import_invoices})
        for column, value in company.items():
            setattr(row, column, value)
        write_tokens(row, tokens, cipher)
        row.updated_at = now
        db.add(row)
        try:
            db.commit()
        except IntegrityError:
            db.rollback()
            raise
    return row


@dataclass(frozen=True)
class Disconnected:
    """A connection just dropped: its refresh token to revoke at its provider (None if it had none
    or it could not be decrypted)."""

    refresh_token: str | None
    tokens_unreadable: bool = False
    provider: str = Provider.QUICKBOOKS.value


def disconnect(engine: Engine, tenant: str, cipher: TokenCipher) -> Disconnected | None:
    """Forget the tenant's tokens and free its company (links are kept for a reconnect), its OAuth
    states with them, in one transaction; None if it was not connected."""
    with session(engine) as db:
        row = connection_for(engine, tenant, db)
        if row is None or row.status == ConnectionStatus.DISCONNECTED.value:
            return None
        unreadable = False
        try:
            refresh = cipher.decrypt(row.refresh_token_enc) if row.refresh_token_enc else None
        except TokenDecryptionError:  # nothing to revoke with; dropping the tokens is what matters
            refresh, unreadable = None, True
        row.status = ConnectionStatus.DISCONNECTED.value
        row.realm_id = None
        row.access_token_enc = row.refresh_token_enc = None
        row.access_expires_at = row.refresh_expires_at = None
        row.last_error = None
        row.updated_at = utcnow()
        db.add(row)
        oauth_state.forget(db, tenant)
        db.commit()
    return Disconnected(refresh, unreadable, row.provider)


def connection_by_id(engine: Engine, connection_id: int) -> Connection | None:
    with session(engine) as db:
        return db.get(Connection, connection_id)


def all_connections(engine: Engine) -> list[Connection]:
    with session(engine) as db:
        return list(db.exec(select(Connection)))


def park(engine: Engine, realm_id: str, reason_for: Callable[[Connection], str]) -> str | None:
    """Move the realm's connection, if connected, to needs-reconnect with `reason_for(row)` as its
    error; returns that reason, or None if it was not connected."""
    with session(engine) as db:
        row = connection_of_realm(engine, realm_id, db)
        if row is None or row.status != ConnectionStatus.CONNECTED.value:
            return None
        reason = reason_for(row)
        row.status = ConnectionStatus.NEEDS_RECONNECT.value
        row.last_error = reason
        row.updated_at = utcnow()
        db.add(row)
        db.commit()
        return reason


def unpark(engine: Engine, reason: str, may_resume: Callable[[Connection], bool], tenant: str | None = None) -> int:
    """Connections (all, or `tenant`'s) parked with `reason` for which `may_resume(row)`: connected
    again, in one transaction; returns how many."""
    resumed = 0
    query = select(Connection).where(Connection.status == ConnectionStatus.NEEDS_RECONNECT.value,
                                     Connection.last_error == reason)
    if tenant is not None:
        query = query.where(Connection.tenant_id == tenant)
    with session(engine) as db:
        for row in db.exec(query).all():
            if row.realm_id is not None and may_resume(row):
                row.status = ConnectionStatus.CONNECTED.value
                row.last_error = None
                row.updated_at = utcnow()
                db.add(row)
                resumed += 1
        db.commit()
    return resumed


def store_settings(engine: Engine, tenant: str, defaults: Mapping[str, Any],
                    updates_of: Callable[[CardSettings], Mapping[str, Any]], now: datetime) -> CardSettings:
    """Store the card-settings changes `updates_of(current settings)` on the tenant's connection (made
    with `defaults` if it has none yet), in one transaction; returns the new settings."""
    with session(engine) as db:
        row = connection_for(engine, tenant, db)
        if row is None:
            row = Connection(tenant_id=tenant, settings=dict(defaults))
        row.settings = stored_with(row.settings, updates_of(card_settings(row)))
        row.updated_at = now
        db.add(row)
        db.commit()
        return card_settings(row)


def connected(engine: Engine, provider: str = Provider.QUICKBOOKS.value) -> list[Connection]:
    """Every connection of `provider` whose status is connected. The scheduled jobs that ask
    (CDC polls, overdue checks, token keepalive) are QuickBooks' until Xero's are wired, so a
    Xero connection is never handed to a QuickBooks client."""
    with session(engine) as db:
        return list(db.exec(select(Connection).where(Connection.status == ConnectionStatus.CONNECTED.value,
                                                     Connection.provider == provider)))
