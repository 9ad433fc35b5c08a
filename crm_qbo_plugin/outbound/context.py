"""What one push works with: the outbox row, the tenant's connection, a books client, the company.

`rid(purpose)` derives every write's `requestid` from the row's stored one, so each write of the
row (customer, items, the invoice itself) has its own id and a retry of the row reuses all of
them: QBO replays the first answer instead of writing twice. A generation above zero (the linked
QBO record was deleted and must be created anew) changes the id, so the deleted record's old
"created" answer is not replayed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property

from redis.exceptions import LockError
from redis.lock import Lock

from crm_qbo_plugin.host import CrmHost
from crm_qbo_plugin.mapping.invoice import Company
from crm_qbo_plugin.outbound.processor import RetryLater
from crm_qbo_plugin.qbo import QboClient
from crm_qbo_plugin.runtime.services import Services
from crm_qbo_plugin.store.card_settings import CardSettings, card_settings
from crm_qbo_plugin.store.links import push_lock_key
from crm_qbo_plugin.store.tables import Connection, OutboxEvent

LOCK_SECONDS = 300
LOCK_WAIT_SECONDS = 30

_LOCK_MANY = """
local taken = {}
for i, key in ipairs(KEYS) do
  taken[i] = redis.call('SET', key, ARGV[1], 'NX', 'PX', ARGV[2]) and 1 or 0
end
return taken
"""

_UNLOCK_MANY = """
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then redis.call('DEL', key) end
end
return 0
"""


def company_of(conn: Connection) -> Company:
    return Company(
        us=(conn.country or "US").upper() == "US",
        home_currency=(conn.home_currency or "USD").upper(),
        multicurrency=bool(conn.multicurrency),
        custom_txn_numbers=bool(conn.custom_txn_numbers),
        tax_mapping=dict(card_settings(conn).tax_mapping),
        field_mapping=dict(card_settings(conn).field_mapping),
    )


@dataclass
class RecordPush:
    """What every provider's push of one outbox row shares: the row, the connection, the host,
    the card settings, the row's request ids and the record push locks."""

    state: Services
    conn: Connection
    row: OutboxEvent
    # what the record is dated and numbered, for messages about refusals (QBO 6210, 6140)
    txn_date: date | None = field(default=None, kw_only=True)
    doc_number: str | None = field(default=None, kw_only=True)

    @property
    def tenant(self) -> str:
        return self.conn.tenant_id

    @property
    def host(self) -> CrmHost:
        return self.state.host

    @property
    def retried(self) -> bool:
        """True when an earlier attempt of this row may have written to QBO already."""
        return self.row.attempts > 1

    def rid(self, purpose: str, generation: int = 0) -> str:
        suffix = f":{purpose}" + (f":g{generation}" if generation else "")
        return self.row.request_id[: 50 - len(suffix)] + suffix

    @cached_property
    def settings(self) -> CardSettings:
        return card_settings(self.conn)

    def lock_key(self, kind: str, crm_id: str) -> str:
        return push_lock_key(self.tenant, kind, crm_id)

    def try_lock(self, kind: str, crm_id: str) -> Lock | None:
        """The record's push lock if it is free right now (release it when done), else None."""
        lock = self.state.redis.lock(self.lock_key(kind, crm_id), timeout=LOCK_SECONDS)
        return lock if lock.acquire(blocking=False) else None

    def try_lock_many(self, kind: str, crm_ids: Sequence[str], seconds: int = LOCK_SECONDS) -> tuple[str, list[str]]:
        """Take the push locks of those of `crm_ids` that are free right now, for `seconds`, in one
        round trip (the same keys and values `lock` uses); returns the token for `unlock_many` and
        the ids now held."""
        token = uuid.uuid4().hex
        ids = list(dict.fromkeys(crm_ids))
        if not ids:
            return token, []
        taken = self.state.redis.register_script(_LOCK_MANY)(
            keys=[self.lock_key(kind, c) for c in ids], args=[token, seconds * 1000])
        return token, [c for c, ok in zip(ids, taken, strict=True) if int(ok)]

    def unlock_many(self, kind: str, crm_ids: Sequence[str], token: str) -> None:
        """Release the locks `try_lock_many` took (those that expired meanwhile are left alone)."""
        if crm_ids:
            self.state.redis.register_script(_UNLOCK_MANY)(keys=[self.lock_key(kind, c) for c in crm_ids], args=[token])

    def wait_lock(self, kind: str, crm_id: str, seconds: float) -> Lock | None:
        """The record's push lock, waiting up to `seconds` for its holder (release it when done)."""
        lock = self.state.redis.lock(self.lock_key(kind, crm_id), timeout=LOCK_SECONDS, blocking_timeout=seconds)
        return lock if lock.acquire() else None

    @contextmanager
    def lock(self, kind: str, crm_id: str) -> Iterator[None]:
        """Serialise pushes of one record across workers (two rows for one new contact must not
        create two customers)."""
        lock = self.state.redis.lock(self.lock_key(kind, crm_id), timeout=LOCK_SECONDS,
                                     blocking_timeout=LOCK_WAIT_SECONDS)
        if not lock.acquire():
            raise RetryLater(f"another worker is pushing this {kind.replace('_', ' ')}")
        try:
            yield
        finally:
            with suppress(LockError):  # expired while we worked: nothing to release
                lock.release()


@dataclass
class Push(RecordPush):
    """A push to QuickBooks: the row's QBO client and the company's facts."""

    qbo: QboClient

    @property
    def realm(self) -> str:
        return self.qbo.realm_id

    @cached_property
    def company(self) -> Company:
        """Read once per push: a batch asks for it per member, and it parses the card's settings."""
        return company_of(self.conn)
