"""The link book: the qbo_link rows of records, their kinds and statuses; read them, set their
visible status, and record a write.

`record_write` is the one way a successful QBO write is remembered: the link (QBO id, SyncToken,
owned-field hash, status synced) and the write-ledger row the inbound side uses to drop our own
echo are committed in ONE transaction, so neither exists without the other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import select

from crm_qbo_plugin.host import Origin
from crm_qbo_plugin.mapping.owned import owned_hash
from crm_qbo_plugin.store.db import HasEngine, session
from crm_qbo_plugin.store.tables import Link, LinkKind, LinkStatus, WriteLedger
from crm_qbo_plugin.store.types import utcnow

# Short names, as the push and pull code use them.
CONTACT, INVOICE, ITEM = LinkKind.CONTACT, LinkKind.INVOICE, LinkKind.ITEM
SALES_RECEIPT, PAYMENT = LinkKind.SALES_RECEIPT, LinkKind.PAYMENT
SYNCED, PENDING, FAILED = LinkStatus.SYNCED, LinkStatus.PENDING, LinkStatus.FAILED
CONFLICT, IGNORED, DELETED = LinkStatus.CONFLICT, LinkStatus.IGNORED, LinkStatus.DELETED
NOT_SYNCED, CRM_ONLY = LinkStatus.NOT_SYNCED, LinkStatus.CRM_ONLY
DOC_NUMBER = "doc_number"  # Link.detail key: the record's number in QuickBooks (DocNumber), when it has one


def push_lock_key(tenant: str, kind: str, crm_id: str) -> str:
    """The Redis lock a push of one record holds (outbound/context.py), for anyone who must not
    change the record's status while a push of it is in flight."""
    return f"crm-qbo:push:{tenant}:{kind}:{crm_id}"


def get_link(state: HasEngine, tenant: str, kind: str, crm_id: str) -> Link | None:
    with session(state.engine) as db:
        return db.exec(select(Link).where(Link.tenant_id == tenant, Link.kind == kind, Link.crm_id == crm_id)).first()


def links_for(state: HasEngine, tenant: str, kind: str, crm_ids: list[str]) -> dict[str, Link]:
    if not crm_ids:
        return {}
    with session(state.engine) as db:
        rows = db.exec(select(Link).where(Link.tenant_id == tenant, Link.kind == kind,
                                          Link.crm_id.in_(crm_ids))).all()  # type: ignore[attr-defined]
    return {row.crm_id: row for row in rows}


def link_by_qbo_id(state: HasEngine, tenant: str, kind: str, qbo_id: str) -> Link | None:
    with session(state.engine) as db:
        return db.exec(select(Link).where(Link.tenant_id == tenant, Link.kind == kind, Link.qbo_id == qbo_id)).first()


def set_status(state: HasEngine, tenant: str, kind: str, crm_id: str, status: str,
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


def mark_if_token(state: HasEngine, tenant: str, kind: str, crm_id: str, sync_token: str | None, status: str,
                  error: str | None, detail: Mapping[str, Any]) -> bool:
    """Set the link's status only if it still holds `sync_token` (an inbound change that moved
    the link on meanwhile wins: one conditional UPDATE); returns whether it was set."""
    link = get_link(state, tenant, kind, crm_id)
    if link is None or link.sync_token != sync_token:
        return False
    table = Link.__table__  # type: ignore[attr-defined]
    token_now = table.c.sync_token.is_(None) if sync_token is None else table.c.sync_token == sync_token
    with state.engine.begin() as conn:
        done = conn.execute(table.update().where(table.c.id == link.id, token_now).values(
            status=status, last_error=error, detail={**(link.detail or {}), **detail}, updated_at=utcnow()))
    return bool(done.rowcount == 1)


@dataclass(frozen=True)
class Write:
    """One successful QBO write to remember: the CRM record, QBO's answer, the status to show."""

    crm_id: str
    response: Mapping[str, Any]
    status: str = SYNCED
    error: str | None = None
    detail: Mapping[str, Any] | None = field(default=None)


def set_statuses(state: HasEngine, tenant: str, kind: str, crm_ids: Sequence[str], status: str,
                 error: str | None = None) -> None:
    """`set_status` for many records of one kind, in one transaction (a batch's members)."""
    if not crm_ids:
        return
    now = utcnow()
    with session(state.engine) as db:
        rows = db.exec(select(Link).where(Link.tenant_id == tenant, Link.kind == kind,
                                          Link.crm_id.in_(list(crm_ids)))).all()  # type: ignore[attr-defined]
        by_crm = {row.crm_id: row for row in rows}
        for crm_id in dict.fromkeys(crm_ids):
            link = by_crm.get(crm_id) or Link(tenant_id=tenant, kind=kind, crm_id=crm_id, origin=Origin.CRM.value)
            link.status = status
            link.last_error = error
            link.updated_at = now
            db.add(link)
        db.commit()


def record_write(state: HasEngine, tenant: str, realm_id: str, kind: str, crm_id: str, entity: str,
                 response: Mapping[str, Any], *, status: str = SYNCED, error: str | None = None,
                 detail: Mapping[str, Any] | None = None) -> Link:
    """Remember a successful write: link + write-ledger row, one transaction."""
    return record_writes(state, tenant, realm_id, kind, entity, [Write(crm_id, response, status, error, detail)])[0]


def record_writes(state: HasEngine, tenant: str, realm_id: str, kind: str, entity: str,
                  writes: Sequence[Write]) -> list[Link]:
    """`record_write` for many records of one kind (a batch's answers): links and write-ledger rows
    of them all in ONE transaction, read with one query each. Returns the links in order."""
    if not writes:
        return []
    now = utcnow()
    qbo_ids = [str(w.response["Id"]) for w in writes]
    with session(state.engine) as db:
        rows = db.exec(select(Link).where(Link.tenant_id == tenant, Link.kind == kind,
                                          Link.crm_id.in_([w.crm_id for w in writes]))).all()  # type: ignore[attr-defined]
        by_crm = {row.crm_id: row for row in rows}
        seen = {(row.entity_id, row.sync_token) for row in db.exec(select(WriteLedger).where(
            WriteLedger.realm_id == realm_id, WriteLedger.entity == entity,
            WriteLedger.entity_id.in_(qbo_ids))).all()}  # type: ignore[attr-defined]
        links: list[Link] = []
        for write, qbo_id in zip(writes, qbo_ids, strict=True):
            sync_token = str(write.response.get("SyncToken", ""))
            digest = owned_hash(entity, write.response)
            link = by_crm.get(write.crm_id)
            if link is None:
                link = by_crm[write.crm_id] = Link(tenant_id=tenant, kind=kind, crm_id=write.crm_id,
                                                   origin=Origin.CRM.value)
            link.qbo_id = qbo_id
            link.sync_token = sync_token
            link.owned_hash = digest
            link.status = write.status
            link.last_error = write.error
            if write.detail is not None:
                link.detail = dict(write.detail)
            if write.response.get("DocNumber"):  # the number QuickBooks users know the record by
                link.detail = {**(link.detail or {}), DOC_NUMBER: str(write.response["DocNumber"])}
            link.updated_at = now
            db.add(link)
            links.append(link)
            if sync_token and (qbo_id, sync_token) not in seen:  # a replayed answer was recorded already
                seen.add((qbo_id, sync_token))
                db.add(WriteLedger(realm_id=realm_id, entity=entity, entity_id=qbo_id,
                                   sync_token=sync_token, owned_hash=digest))
        db.commit()
        return links
