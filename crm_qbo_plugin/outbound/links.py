"""The qbo_link rows of pushed records: read them, set their visible status, and record a write.

`record_write` is the one way a successful QBO write is remembered: the link (QBO id, SyncToken,
owned-field hash, status synced) and the write-ledger row the inbound side uses to drop our own
echo are committed in ONE transaction, so neither exists without the other.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlmodel import select

from crm_qbo_plugin.host import Origin
from crm_qbo_plugin.mapping.owned import owned_hash
from crm_qbo_plugin.state import PluginState
from crm_qbo_plugin.store.db import session
from crm_qbo_plugin.store.tables import Link, WriteLedger
from crm_qbo_plugin.store.types import utcnow

CONTACT = "contact"
INVOICE = "invoice"
ITEM = "item"
SALES_RECEIPT = "sales_receipt"
PAYMENT = "payment"

SYNCED = "synced"
PENDING = "pending"
FAILED = "failed"
CONFLICT = "conflict"
IGNORED = "ignored"
DELETED = "deleted"


def get_link(state: PluginState, tenant: str, kind: str, crm_id: str) -> Link | None:
    with session(state.engine) as db:
        return db.exec(select(Link).where(Link.tenant_id == tenant, Link.kind == kind, Link.crm_id == crm_id)).first()


def links_for(state: PluginState, tenant: str, kind: str, crm_ids: list[str]) -> dict[str, Link]:
    if not crm_ids:
        return {}
    with session(state.engine) as db:
        rows = db.exec(select(Link).where(Link.tenant_id == tenant, Link.kind == kind,
                                          Link.crm_id.in_(crm_ids))).all()  # type: ignore[attr-defined]
    return {row.crm_id: row for row in rows}


def link_by_qbo_id(state: PluginState, tenant: str, kind: str, qbo_id: str) -> Link | None:
    with session(state.engine) as db:
        return db.exec(select(Link).where(Link.tenant_id == tenant, Link.kind == kind, Link.qbo_id == qbo_id)).first()


def set_status(state: PluginState, tenant: str, kind: str, crm_id: str, status: str,
               error: str | None = None, *, detail: Mapping[str, Any] | None = None,
               clear_qbo: bool = False, bump_generation: bool = False) -> Link:
    """Create or update the link's visible status (and reason) without touching its QBO side."""
    with session(state.engine) as db:
        link = db.exec(select(Link).where(Link.tenant_id == tenant, Link.kind == kind, Link.crm_id == crm_id)).first()
        if link is None:
            link = Link(tenant_id=tenant, kind=kind, crm_id=crm_id, origin=Origin.CRM.value, status=status)
        link.status = status
        link.last_error = error
        if detail is not None:
            link.detail = {**(link.detail or {}), **detail}
        if clear_qbo:
            link.qbo_id = None
            link.sync_token = None
            link.owned_hash = None
        if bump_generation:
            link.generation += 1
        link.updated_at = utcnow()
        db.add(link)
        db.commit()
        return link


def record_write(state: PluginState, tenant: str, realm_id: str, kind: str, crm_id: str, entity: str,
                 response: Mapping[str, Any], *, status: str = SYNCED, error: str | None = None,
                 detail: Mapping[str, Any] | None = None) -> Link:
    """Remember a successful write: link + write-ledger row, one transaction."""
    qbo_id = str(response["Id"])
    sync_token = str(response.get("SyncToken", ""))
    digest = owned_hash(entity, response)
    with session(state.engine) as db:
        link = db.exec(select(Link).where(Link.tenant_id == tenant, Link.kind == kind, Link.crm_id == crm_id)).first()
        if link is None:
            link = Link(tenant_id=tenant, kind=kind, crm_id=crm_id, origin=Origin.CRM.value)
        link.qbo_id = qbo_id
        link.sync_token = sync_token
        link.owned_hash = digest
        link.status = status
        link.last_error = error
        if detail is not None:
            link.detail = dict(detail)
        link.updated_at = utcnow()
        db.add(link)
        if sync_token:
            seen = db.exec(select(WriteLedger).where(
                WriteLedger.realm_id == realm_id, WriteLedger.entity == entity,
                WriteLedger.entity_id == qbo_id, WriteLedger.sync_token == sync_token)).first()
            if seen is None:  # a replayed answer was recorded already
                db.add(WriteLedger(realm_id=realm_id, entity=entity, entity_id=qbo_id,
                                   sync_token=sync_token, owned_hash=digest))
        db.commit()
        return link
