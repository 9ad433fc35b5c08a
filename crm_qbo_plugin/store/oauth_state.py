"""The OAuth `state` of "Connect to QuickBooks": made with `secrets`, stored server-side as a
hash, bound to the browser session, the user and the tenant, single use, expiring in minutes."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from crm_qbo_plugin.host import HostUser
from crm_qbo_plugin.store.db import session
from crm_qbo_plugin.store.tables import OAuthState
from crm_qbo_plugin.store.types import Provider

STATE_TTL = timedelta(minutes=10)


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True)
class ConnectIntent:
    tenant: str
    switch_company: bool
    import_invoices: bool
    provider: str = Provider.QUICKBOOKS.value
    code_verifier_enc: str | None = field(default=None, repr=False)  # Xero's PKCE verifier, encrypted


def issue_state(engine: Engine, user: HostUser, session_nonce: str, now: datetime, *,
                switch_company: bool = False, import_invoices: bool = False, value: str | None = None,
                provider: str = Provider.QUICKBOOKS.value, code_verifier_enc: str | None = None) -> str:
    value = value or secrets.token_urlsafe(32)
    table = OAuthState.__table__  # type: ignore[attr-defined]
    with session(engine) as db:
        # Old, unused states of this tenant are dropped: only the newest connect attempt counts.
        db.execute(sa.delete(table).where(table.c.tenant_id == user.tenant, table.c.used_at.is_(None)))
        db.add(OAuthState(
            state_hash=digest(value), tenant_id=user.tenant, session_hash=digest(session_nonce),
            user_id=user.id, switch_company=switch_company, import_invoices=import_invoices,
            provider=provider, code_verifier_enc=code_verifier_enc, expires_at=now + STATE_TTL,
        ))
        db.commit()
    return value


def consume_state(engine: Engine, value: str | None, user: HostUser, session_nonce: str | None,
                  now: datetime) -> ConnectIntent | None:
    """Mark the state used and return its intent, or None if it is missing, unknown, expired,
    already used, or belongs to another session, user or tenant."""
    if not value or not session_nonce or len(value) > 200:
        return None
    table = OAuthState.__table__  # type: ignore[attr-defined]
    with engine.begin() as conn:
        result = conn.execute(
            table.update()
            .where(
                table.c.state_hash == digest(value),
                table.c.used_at.is_(None),
                table.c.expires_at > now,
                table.c.tenant_id == user.tenant,
                table.c.user_id == user.id,
                table.c.session_hash == digest(session_nonce),
            )
            .values(used_at=now)
        )
        if result.rowcount != 1:
            return None
    with session(engine) as db:
        row = db.exec(select(OAuthState).where(OAuthState.state_hash == digest(value))).one()
    return ConnectIntent(row.tenant_id, row.switch_company, row.import_invoices, row.provider, row.code_verifier_enc)


def forget(db: Session, tenant: str) -> None:
    """Drop the tenant's OAuth states, inside the caller's transaction (an unlink)."""
    table = OAuthState.__table__  # type: ignore[attr-defined]
    db.execute(sa.delete(table).where(table.c.tenant_id == tenant))
