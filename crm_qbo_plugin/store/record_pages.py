"""Records for the card's tabs: one page of a status's records, optionally searched, and the true
total, so the card can say "21–40 of 2,427" and reach every record. Always scoped by tenant."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import col, func, select

from crm_qbo_plugin.store.db import session
from crm_qbo_plugin.store.tables import Link, LinkKind

# The host names payments; a payment not against an invoice is a sales receipt in QuickBooks.
HOST_KIND = {"contact": "contact", "invoice": "invoice", "payment": "payment", "sales_receipt": "payment"}


@dataclass(frozen=True)
class RecordPage:
    rows: list[Link]
    total: int


def page_records(engine: Engine, tenant: str, *, status: str | None = None, kind: str | None = None,
                 text: str | None = None, host_matches: Mapping[str, Sequence[str]] | None = None,
                 limit: int = 50, offset: int = 0) -> RecordPage:
    """Newest first. With `text`, a record matches when its CRM or QuickBooks id contains it or the
    host found it by number, name or e-mail (`host_matches`: ids per host kind)."""
    where: list[Any] = [col(Link.tenant_id) == tenant, col(Link.kind) != LinkKind.ITEM.value]
    if status:
        where.append(col(Link.status) == status)
    if kind:
        where.append(col(Link.kind) == kind)
    if text:
        pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        found: list[Any] = [col(Link.crm_id).ilike(pattern, escape="\\"), col(Link.qbo_id).ilike(pattern, escape="\\")]
        for link_kind, host_kind in HOST_KIND.items():
            ids = list((host_matches or {}).get(host_kind, ()))
            if ids:
                found.append(sa.and_(col(Link.kind) == link_kind, col(Link.crm_id).in_(ids)))
        where.append(sa.or_(*found))
    with session(engine) as db:
        total = db.exec(select(func.count()).select_from(Link).where(*where)).one()
        rows = list(db.exec(select(Link).where(*where)
                            .order_by(sa.desc(col(Link.updated_at)), sa.desc(col(Link.id))).offset(offset).limit(limit)))
    return RecordPage(rows=rows, total=int(total))
