"""Reading connections: the one place the plugin looks a tenant's or a realm's connection up."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from crm_qbo_plugin.store.db import session
from crm_qbo_plugin.store.tables import Connection, ConnectionStatus


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


def connected(engine: Engine) -> list[Connection]:
    """Every connection whose status is connected."""
    with session(engine) as db:
        return list(db.exec(select(Connection).where(Connection.status == ConnectionStatus.CONNECTED.value)))
