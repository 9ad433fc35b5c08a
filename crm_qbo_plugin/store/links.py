"""The link book: the qbo_link rows (a CRM record ↔ its QBO entity), their kinds and statuses
(`LinkKind`, `LinkStatus`), the one place that knows the table's rules. Both directions use it.

Per record (outbound pushes, the card): read a link, set its visible status, and record a write.
`record_write` is the one way a successful QBO write is remembered: the link (QBO id, SyncToken,
owned-field hash, status synced) and the write-ledger row the inbound side uses to drop our own
echo are committed in ONE transaction, so neither exists without the other.

In batches (inbound drains and imports): `LinkBook` loads a tenant's links in a few queries (by QBO
ids, by CRM ids), the caller decides in memory, and `flush` writes every insert, update and delete
of the batch inside the caller's transaction — together with the inbox status or the import
checkpoint that the batch completes, so both commit or neither does. `Ledger` reads the write
ledger the same way.
"""


from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection as DbConnection
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from crm_qbo_plugin.host import Origin
from crm_qbo_plugin.mapping.owned import owned_hash
from crm_qbo_plugin.store.db import HasEngine, session
from crm_qbo_plugin.store.outbox import complete_in
from crm_qbo_plugin.store.tables import Link, LinkKind, LinkStatus, WriteLedger
from crm_qbo_plugin.store.types import utcnow

# Short names, as the push and pull code use them.
CONTACT, INVOICE, ITEM = LinkKind.CONTACT, LinkKind.INVOICE, LinkKind.ITEM
SALES_RECEIPT, PAYMENT = LinkKind.SALES_RECEIPT, LinkKind.PAYMENT
SYNCED, PENDING, FAILED = LinkStatus.SYNCED, LinkStatus.PENDING, LinkStatus.FAILED
CONFLICT, IGNORED, DELETED = LinkStatus.CONFLICT, LinkStatus.IGNORED, LinkStatus.DELETED
NOT_SYNCED, CRM_ONLY = LinkStatus.NOT_SYNCED, LinkStatus.CRM_ONLY
DOC_NUMBER = "doc_number"  # Link.detail key: the record's number in QuickBooks (DocNumber), when it has one

LINKS = Link.__table__  # type: ignore[attr-defined]
LEDGER = WriteLedger.__table__  # type: ignore[attr-defined]


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


def unfinished_pushes(state: HasEngine, tenant: str, kind: str) -> list[str]:
    """CRM records of `kind` whose first push began and recorded no books id yet (a worker may have
    died after the books answered): the inbound side must not take their records for new ones."""
    with session(state.engine) as db:
        return list(db.exec(select(Link.crm_id).where(
            Link.tenant_id == tenant, Link.kind == kind, Link.origin == Origin.CRM.value,
            Link.qbo_id.is_(None),  # type: ignore[union-attr]
            Link.status.in_([PENDING.value, FAILED.value, LinkStatus.CONFLICT.value]))).all())  # type: ignore[attr-defined]


def record_links(state: HasEngine, tenant: str) -> list[Link]:
    """Every link of the tenant's records (items are catalogue, not records): what a reconcile compares."""
    with session(state.engine) as db:
        return list(db.exec(select(Link).where(Link.tenant_id == tenant, Link.kind != ITEM.value)))


def crm_ids_by_qbo(state: HasEngine, tenant: str, kind: str, qbo_ids: Iterable[str]) -> dict[str, str]:
    """QBO id -> CRM id for the linked ones of `qbo_ids` (of one kind)."""
    wanted = sorted(set(qbo_ids))
    if not wanted:
        return {}
    with session(state.engine) as db:
        rows = db.exec(select(Link.qbo_id, Link.crm_id).where(
            Link.tenant_id == tenant, Link.kind == kind, Link.qbo_id.in_(wanted))).all()  # type: ignore[union-attr]
    return {str(qbo_id): crm_id for qbo_id, crm_id in rows}


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
    token_now = LINKS.c.sync_token.is_(None) if sync_token is None else LINKS.c.sync_token == sync_token
    with state.engine.begin() as conn:
        done = conn.execute(LINKS.update().where(LINKS.c.id == link.id, token_now).values(
            status=status, last_error=error, detail={**(link.detail or {}), **detail}, updated_at=utcnow()))
    return bool(done.rowcount == 1)


def forget_company(db: Session, tenant: str, now: datetime) -> None:
    """Inside the caller's transaction (a switch to another QuickBooks company): every link goes,
    but the changes held while disconnected stay visible, "ignored" with the reason — they are
    never sent to the new company (no retroactive sync)."""
    db.execute(LINKS.delete().where(LINKS.c.tenant_id == tenant, LINKS.c.status != NOT_SYNCED.value))
    db.execute(LINKS.update().where(LINKS.c.tenant_id == tenant).values(
        status=IGNORED.value, qbo_id=None, sync_token=None, owned_hash=None, updated_at=now,
        last_error="changed while QuickBooks was disconnected from the previous company; "
                   "not sent to the new one (no retroactive sync)"))


@dataclass(frozen=True)
class Write:
    """One successful QBO write to remember: the CRM record, QBO's answer, the status to show."""

    crm_id: str
    response: Mapping[str, Any]
    status: str = SYNCED
    error: str | None = None
    detail: Mapping[str, Any] | None = field(default=None)
    # A create: never recorded over a link another push gave a QBO id meanwhile (the caller
    # sees the link keep the other id, and undoes its copy).
    created: bool = False


def set_statuses(state: HasEngine, tenant: str, kind: str, crm_ids: Sequence[str], status: str,
                 error: str | None = None) -> None:
    """`set_status` for many records of one kind, in one transaction (a batch's members)."""
    if not crm_ids:
        return
    now = utcnow()
    wanted = list(dict.fromkeys(crm_ids))
    mine = sa.and_(LINKS.c.tenant_id == tenant, LINKS.c.kind == kind)
    with state.engine.begin() as conn:  # Core: a batch's 30 links without 30 ORM objects
        held = set(conn.execute(sa.select(LINKS.c.crm_id).where(mine, LINKS.c.crm_id.in_(wanted))).scalars())
        if held:
            conn.execute(LINKS.update().where(mine, LINKS.c.crm_id.in_(list(held)))
                         .values(status=status, last_error=error, updated_at=now))
        new = [c for c in wanted if c not in held]
        if new:
            conn.execute(LINKS.insert(), [
                {"tenant_id": tenant, "kind": kind, "crm_id": c, "origin": Origin.CRM.value, "status": status,
                 "last_error": error, "generation": 0, "detail": {}, "updated_at": now} for c in new])


def record_write(state: HasEngine, tenant: str, realm_id: str, kind: str, crm_id: str, entity: str,
                 response: Mapping[str, Any], *, status: str = SYNCED, error: str | None = None,
                 detail: Mapping[str, Any] | None = None) -> Link:
    """Remember a successful write: link + write-ledger row, one transaction."""
    return record_writes(state, tenant, realm_id, kind, entity, [Write(crm_id, response, status, error, detail)])[0]


def record_writes(state: HasEngine, tenant: str, realm_id: str, kind: str, entity: str,
                  writes: Sequence[Write]) -> list[Link]:
    """`record_write` for many records of one kind (a batch's answers): links and write-ledger rows
    of them all in ONE transaction, read with one query each. Returns the links in order.

    A link another transaction inserted between our read and our insert (a poll linking, by its
    e-mail, the customer our create just made) is read again and updated: the books hold the
    record, so failing here would leave it unrecorded and the push failed."""
    if not writes:
        return []
    try:
        return _record_writes(state, tenant, realm_id, kind, entity, writes)
    except IntegrityError:
        return _record_writes(state, tenant, realm_id, kind, entity, writes)


def _record_writes(state: HasEngine, tenant: str, realm_id: str, kind: str, entity: str,
                   writes: Sequence[Write]) -> list[Link]:
    now = utcnow()
    qbo_ids = [str(w.response["Id"]) for w in writes]
    with session(state.engine) as db:
        query = select(Link).where(Link.tenant_id == tenant, Link.kind == kind,
                                   Link.crm_id.in_([w.crm_id for w in writes]))  # type: ignore[attr-defined]
        if any(w.created for w in writes):
            query = query.with_for_update()  # PostgreSQL: two creates of one record record one at a time
        rows = db.exec(query).all()
        by_crm = {row.crm_id: row for row in rows}
        seen = {(row.entity_id, row.sync_token) for row in db.exec(select(WriteLedger).where(
            WriteLedger.realm_id == realm_id, WriteLedger.entity == entity,
            WriteLedger.entity_id.in_(qbo_ids))).all()}  # type: ignore[attr-defined]
        links: list[Link] = []
        for write, qbo_id in zip(writes, qbo_ids, strict=True):
            sync_token = str(write.response.get("SyncToken", ""))
            digest = owned_hash(entity, write.response)
            if sync_token and (qbo_id, sync_token) not in seen:  # a replayed answer was recorded already
                seen.add((qbo_id, sync_token))
                db.add(WriteLedger(realm_id=realm_id, entity=entity, entity_id=qbo_id,
                                   sync_token=sync_token, owned_hash=digest))
            link = by_crm.get(write.crm_id)
            if link is None:
                link = by_crm[write.crm_id] = Link(tenant_id=tenant, kind=kind, crm_id=write.crm_id,
                                                   origin=Origin.CRM.value)
            elif write.created and link.qbo_id and link.qbo_id != qbo_id and link.status != DELETED:
                links.append(link)  # another push made the record meanwhile: its link stands
                continue
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
        complete_in(db, tenant, kind, [w.crm_id for w in writes])
        db.commit()
        return links


# ---------------------------------------------------------------------- batches (inbound)

_IN_CHUNK = 900
MAX_CRM_ID = 64


def proposed_crm_id(kind: str, realm_id: str, qbo_id: str) -> str:
    """The CRM id proposed for a record first seen in QBO: stable, so a re-run after a crash
    updates the record it created before instead of creating a second one."""
    value = f"qbo-{realm_id}-{kind[0]}{qbo_id}"
    if len(value) <= MAX_CRM_ID:
        return value
    return "qbo-" + hashlib.sha256(value.encode()).hexdigest()[:40]


@dataclass
class LinkRow:
    kind: str
    crm_id: str
    qbo_id: str | None
    origin: str
    sync_token: str | None = None
    owned_hash: str | None = None
    status: str = SYNCED.value
    detail: dict[str, Any] = field(default_factory=dict)
    id: int | None = None

    def token_at_least(self, sync_token: str | None) -> bool:
        """True if this link already holds `sync_token` or a newer one."""
        return token_value(self.sync_token) >= token_value(sync_token) >= 0


def token_value(sync_token: Any) -> int:
    try:
        return int(str(sync_token))
    except (TypeError, ValueError):
        return -1


def _chunks(values: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(values), _IN_CHUNK):
        yield values[start:start + _IN_CHUNK]


class LinkBook:
    """One tenant's links as far as a batch needs them (inbound); see the module docstring."""

    def __init__(self, engine: Engine, tenant: str) -> None:
        self.engine = engine
        self.tenant = tenant
        self._by_qbo: dict[tuple[str, str], LinkRow | None] = {}
        self._by_crm: dict[tuple[str, str], LinkRow | None] = {}
        self._dirty: dict[int, LinkRow] = {}
        self._new: list[LinkRow] = []
        self._removed: list[int] = []

    # ------------------------------------------------------------------ reading

    def _remember(self, row: LinkRow) -> None:
        if row.qbo_id is not None:
            self._by_qbo[(row.kind, row.qbo_id)] = row
        self._by_crm[(row.kind, row.crm_id)] = row

    def _load(self, kind: str, column: str, values: Iterable[str]) -> None:
        cache = self._by_qbo if column == "qbo_id" else self._by_crm
        wanted = sorted({v for v in values if (kind, v) not in cache})
        if not wanted:
            return
        with self.engine.connect() as conn:
            for chunk in _chunks(wanted):
                rows = conn.execute(
                    sa.select(LINKS).where(
                        LINKS.c.tenant_id == self.tenant, LINKS.c.kind == kind, LINKS.c[column].in_(chunk)
                    )
                ).mappings()
                for row in rows:
                    self._remember(LinkRow(
                        kind=row["kind"], crm_id=row["crm_id"], qbo_id=row["qbo_id"], origin=row["origin"],
                        sync_token=row["sync_token"], owned_hash=row["owned_hash"], status=row["status"],
                        detail=dict(row["detail"] or {}), id=row["id"],
                    ))
        for value in wanted:
            cache.setdefault((kind, value), None)

    def preload(self, kind: str, qbo_ids: Iterable[str]) -> None:
        self._load(kind, "qbo_id", qbo_ids)

    def holds_now(self, link: LinkRow, sync_token: str | None) -> bool:
        """`link.token_at_least(sync_token)` as the database has the link now: a push may have
        recorded a newer token since the link was read (a poll's page can wait minutes for the
        books' limits)."""
        if link.id is None:
            return link.token_at_least(sync_token)
        with self.engine.connect() as conn:
            stored = conn.execute(sa.select(LINKS.c.sync_token).where(LINKS.c.id == link.id)).scalar()
        return replace(link, sync_token=stored).token_at_least(sync_token)

    def by_qbo(self, kind: str, qbo_id: str) -> LinkRow | None:
        self._load(kind, "qbo_id", [qbo_id])
        return self._by_qbo.get((kind, qbo_id))

    def by_crm(self, kind: str, crm_id: str) -> LinkRow | None:
        self._load(kind, "crm_id", [crm_id])
        return self._by_crm.get((kind, crm_id))

    def all_qbo_ids(self, kind: str) -> dict[str, LinkRow]:
        """Every link of `kind` with a QBO id (for a full reconcile), freshly read."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(LINKS.c.qbo_id).where(
                    LINKS.c.tenant_id == self.tenant, LINKS.c.kind == kind, LINKS.c.qbo_id.is_not(None)
                )
            ).scalars()
            ids = [str(r) for r in rows]
        self._load(kind, "qbo_id", ids)
        return {i: row for i in ids if (row := self._by_qbo.get((kind, i))) is not None}

    # ------------------------------------------------------------------ changing

    def add(self, row: LinkRow) -> LinkRow:
        self._new.append(row)
        self._remember(row)
        return row

    def changed(self, row: LinkRow) -> None:
        if row.id is not None:
            self._dirty[row.id] = row

    def move(self, row: LinkRow, qbo_id: str) -> None:
        """Point `row` at another QBO record (a merge's survivor); its SyncToken no longer applies."""
        if row.qbo_id is not None:
            self._by_qbo[(row.kind, row.qbo_id)] = None
        row.qbo_id, row.sync_token, row.owned_hash = qbo_id, None, None
        self._by_qbo[(row.kind, qbo_id)] = row
        self.changed(row)

    def remove(self, row: LinkRow) -> None:
        if row.qbo_id is not None:
            self._by_qbo[(row.kind, row.qbo_id)] = None
        self._by_crm[(row.kind, row.crm_id)] = None
        if row.id is not None:
            self._dirty.pop(row.id, None)
            self._removed.append(row.id)
        elif row in self._new:
            self._new.remove(row)

    def pending_writes(self) -> bool:
        return bool(self._new or self._dirty or self._removed)

    def flush(self, conn: DbConnection, now: datetime | None = None) -> None:
        """Write the batch's link changes inside the caller's transaction."""
        now = now or utcnow()
        if self._removed:
            conn.execute(LINKS.delete().where(LINKS.c.id.in_(self._removed)))
        for row in self._dirty.values():
            conn.execute(
                LINKS.update().where(LINKS.c.id == row.id).values(
                    qbo_id=row.qbo_id, sync_token=row.sync_token, owned_hash=row.owned_hash,
                    status=row.status, detail=row.detail, updated_at=now,
                )
            )
        if self._new:
            created = conn.execute(
                LINKS.insert().returning(LINKS.c.id, sort_by_parameter_order=True),
                [
                    {"tenant_id": self.tenant, "kind": r.kind, "crm_id": r.crm_id, "qbo_id": r.qbo_id,
                     "sync_token": r.sync_token, "origin": r.origin, "owned_hash": r.owned_hash,
                     "status": r.status, "last_error": None, "generation": 0, "detail": r.detail,
                     "updated_at": now}
                    for r in self._new
                ],
            ).scalars()
            for row, new_id in zip(self._new, created, strict=True):
                row.id = int(new_id)
        self._new, self._dirty, self._removed = [], {}, []

    def discard_changes(self) -> None:
        """Forget unwritten changes and the cache (after a failed batch the database is the truth)."""
        self._by_qbo.clear()
        self._by_crm.clear()
        self._new, self._dirty, self._removed = [], {}, []


class Ledger:
    """The write ledger of one realm: (entity, id, SyncToken) -> owned-field hash of our write."""

    def __init__(self, engine: Engine, realm_id: str) -> None:
        self.engine = engine
        self.realm_id = realm_id
        self._loaded: set[tuple[str, str]] = set()
        self._hashes: dict[tuple[str, str, str], str] = {}

    def preload(self, entity: str, ids: Iterable[str]) -> None:
        wanted = sorted({i for i in ids if (entity, i) not in self._loaded})
        if not wanted:
            return
        with self.engine.connect() as conn:
            for chunk in _chunks(wanted):
                rows = conn.execute(
                    sa.select(LEDGER.c.entity_id, LEDGER.c.sync_token, LEDGER.c.owned_hash).where(
                        LEDGER.c.realm_id == self.realm_id, LEDGER.c.entity == entity, LEDGER.c.entity_id.in_(chunk)
                    )
                )
                for entity_id, token, owned in rows:
                    self._hashes[(entity, str(entity_id), str(token))] = str(owned)
        self._loaded.update((entity, i) for i in wanted)

    def hash_for(self, entity: str, entity_id: str, sync_token: str) -> str | None:
        self.preload(entity, [entity_id])
        return self._hashes.get((entity, entity_id, sync_token))
