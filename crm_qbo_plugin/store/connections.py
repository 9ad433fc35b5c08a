"""Connections: the one place the plugin looks a tenant's or a realm's connection up, and moves
one between connected and needs-reconnect."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from crm_qbo_plugin.store.card_settings import CardSettings, card_settings, stored_with
from crm_qbo_plugin.store.db import session
from crm_qbo_plugin.store.tables import Connection, ConnectionStatus
from crm_qbo_plugin.store.types import utcnow


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


def connected(engine: Engine) -> list[Connection]:
    """Every connection whose status is connected."""
    with session(engine) as db:
        return list(db.exec(select(Connection).where(Connection.status == ConnectionStatus.CONNECTED.value)))
