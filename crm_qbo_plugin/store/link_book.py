"""The link book in batches: the tenant's links (CRM id ↔ QBO id), loaded for a batch and written
back in one go (store/links.py reads and writes them one record, or one push, at a time).

Inbound work reads links in a few queries (by QBO ids, by CRM ids), decides in memory, and writes
every insert, update and delete of a batch inside the caller's transaction — together with the
inbox status or the import checkpoint that the batch completes, so both commit or neither does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection as DbConnection
from sqlalchemy.engine import Engine

from crm_qbo_plugin.store.tables import Link, LinkStatus, WriteLedger
from crm_qbo_plugin.store.types import utcnow

LINKS = Link.__table__  # type: ignore[attr-defined]
LEDGER = WriteLedger.__table__  # type: ignore[attr-defined]
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
    status: str = LinkStatus.SYNCED.value
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
    """One tenant's links as far as a batch needs them; see the module docstring."""

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
