"""The plugin's tables. All are prefixed qbo_ and scoped by tenant (the CRM's location id).

Uniqueness constraints carry the "exactly once" promises: one outbox row per tenant and event key,
one inbox row per QBO change, one ledger row per SyncToken we produced, one automation claim per
tenant, trigger and subject.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from crm_qbo_plugin.store.types import EXTERNAL_ID_LENGTH, Provider, utc_column, utcnow


class ConnectionStatus(enum.StrEnum):
    DISCONNECTED = "disconnected"
    CONNECTED = "connected"
    NEEDS_RECONNECT = "needs_reconnect"


class OutboxStatus(enum.StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    DONE = "done"
    SKIPPED = "skipped"
    FAILED = "failed"


class LinkKind(enum.StrEnum):
    """What a link's CRM side is (the values are the stored strings)."""

    CONTACT = "contact"
    INVOICE = "invoice"
    ITEM = "item"
    SALES_RECEIPT = "sales_receipt"
    PAYMENT = "payment"


class LinkStatus(enum.StrEnum):
    """A link's visible sync status (the values are the stored strings the card and API show)."""

    SYNCED = "synced"
    PENDING = "pending"
    FAILED = "failed"
    CONFLICT = "conflict"
    IGNORED = "ignored"
    DELETED = "deleted"
    # Changed in the CRM while QuickBooks was disconnected: kept for Retry, never pushed by itself.
    NOT_SYNCED = "not_synced"
    # An imported (QuickBooks-owned) invoice edited or deleted in the CRM: the change stays local.
    CRM_ONLY = "crm_only"


class InboxStatus(enum.StrEnum):
    PENDING = "pending"
    APPLIED = "applied"
    SKIPPED = "skipped"
    DEAD = "dead"


class RunStatus(enum.StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


def _json() -> Any:
    return Field(default_factory=dict, sa_column=sa.Column(sa.JSON, nullable=False))


class Connection(SQLModel, table=True):
    """One per tenant: the link to a books company (QuickBooks realm or Xero organisation), its
    encrypted tokens and company facts. `provider` says which accounting system `realm_id` names."""

    __tablename__ = "qbo_connection"

    id: int | None = Field(default=None, primary_key=True)
    tenant_id: str = Field(max_length=64, unique=True, index=True)
    # The company currently connected (unique: a realm belongs to one tenant at a time), and the
    # company the tenant's links and watermarks belong to (kept across unlink, for reconnects).
    realm_id: str | None = Field(default=None, max_length=EXTERNAL_ID_LENGTH, unique=True)
    pinned_realm_id: str | None = Field(default=None, max_length=EXTERNAL_ID_LENGTH)
    provider: str = Field(default=Provider.QUICKBOOKS.value, max_length=16)
    status: str = Field(default=ConnectionStatus.DISCONNECTED.value, max_length=20)
    access_token_enc: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    refresh_token_enc: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    access_expires_at: datetime | None = Field(default=None, sa_column=utc_column())
    refresh_expires_at: datetime | None = Field(default=None, sa_column=utc_column())
    company_name: str | None = Field(default=None, max_length=1024)
    country: str | None = Field(default=None, max_length=8)
    home_currency: str | None = Field(default=None, max_length=3)
    multicurrency: bool = False
    custom_txn_numbers: bool = False
    tax_model: str | None = Field(default=None, max_length=20)
    settings: dict[str, Any] = _json()
    connected_at: datetime | None = Field(default=None, sa_column=utc_column())
    last_webhook_at: datetime | None = Field(default=None, sa_column=utc_column())
    last_error: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column(nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=utc_column(nullable=False))


class OAuthState(SQLModel, table=True):
    """A pending "Connect to QuickBooks": single use, short-lived, bound to session, user and tenant.

    Only a hash of the state is stored, so a database reader cannot complete someone's connect.
    """

    __tablename__ = "qbo_oauth_state"

    id: int | None = Field(default=None, primary_key=True)
    state_hash: str = Field(max_length=64, unique=True)
    tenant_id: str = Field(max_length=64, index=True)
    session_hash: str = Field(max_length=64)
    user_id: str = Field(max_length=64)
    switch_company: bool = False
    import_invoices: bool = False
    provider: str = Field(default=Provider.QUICKBOOKS.value, max_length=16)
    # Xero's PKCE code verifier (encrypted with the token keys), kept until the callback.
    code_verifier_enc: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    expires_at: datetime = Field(sa_column=utc_column(nullable=False))
    used_at: datetime | None = Field(default=None, sa_column=utc_column())
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column(nullable=False))


class Link(SQLModel, table=True):
    """A CRM record and the QBO entity it is synced with."""

    __tablename__ = "qbo_link"
    __table_args__ = (
        sa.UniqueConstraint("tenant_id", "kind", "crm_id", name="uq_qbo_link_crm"),
        sa.UniqueConstraint("tenant_id", "kind", "qbo_id", name="uq_qbo_link_qbo"),
    )

    id: int | None = Field(default=None, primary_key=True)
    tenant_id: str = Field(max_length=64)
    kind: str = Field(max_length=32)
    crm_id: str = Field(max_length=64)
    qbo_id: str | None = Field(default=None, max_length=EXTERNAL_ID_LENGTH)
    sync_token: str | None = Field(default=None, max_length=16)
    origin: str = Field(max_length=8)
    owned_hash: str | None = Field(default=None, max_length=64)
    # pending | synced | failed | conflict | ignored | deleted | not_synced (changed while
    # disconnected, kept for Retry) | crm_only (an imported invoice changed in the CRM only) — what
    # the card shows for the record.
    status: str = Field(default=LinkStatus.SYNCED.value, max_length=16)
    last_error: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    # Bumped when the QBO record was deleted and must be created anew, so the next create uses a
    # fresh requestid instead of replaying the deleted record's "created" response.
    generation: int = 0
    # Anything the card should show about the record: total mismatch figures, conflict details.
    detail: dict[str, Any] = _json()
    updated_at: datetime = Field(default_factory=utcnow, sa_column=utc_column(nullable=False))


class OutboxEvent(SQLModel, table=True):
    """A host event waiting to be pushed to QBO; the lease lets the sweeper recover lost jobs."""

    __tablename__ = "qbo_outbox"
    __table_args__ = (sa.UniqueConstraint("tenant_id", "event_key", name="uq_qbo_outbox_key"),)

    id: int | None = Field(default=None, primary_key=True)
    tenant_id: str = Field(max_length=64)
    event_key: str = Field(max_length=200)
    event_type: str = Field(max_length=32)
    subject_id: str = Field(max_length=64)
    origin: str = Field(max_length=8)
    source: str | None = Field(default=None, max_length=16)
    status: str = Field(default=OutboxStatus.PENDING.value, max_length=16)
    request_id: str = Field(max_length=50)
    attempts: int = 0
    lease_until: datetime | None = Field(default=None, sa_column=utc_column(index=True))
    last_error: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    occurred_at: datetime = Field(sa_column=utc_column(nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column(nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=utc_column(nullable=False))


class InboxNotice(SQLModel, table=True):
    """One QBO change notice (from a webhook or CDC), recorded exactly once."""

    __tablename__ = "qbo_inbox"
    __table_args__ = (
        sa.UniqueConstraint("realm_id", "entity", "entity_id", "change_stamp", name="uq_qbo_inbox_change"),
    )

    id: int | None = Field(default=None, primary_key=True)
    realm_id: str = Field(max_length=EXTERNAL_ID_LENGTH)
    tenant_id: str | None = Field(default=None, max_length=64)
    entity: str = Field(max_length=32)
    entity_id: str = Field(max_length=EXTERNAL_ID_LENGTH)
    operation: str = Field(max_length=16)
    change_stamp: str = Field(max_length=40)
    event_id: str | None = Field(default=None, max_length=120)  # CloudEvents id, when given
    data: dict[str, Any] = _json()  # e.g. {"deletedid": "27"} for a merge
    source: str = Field(default="webhook", max_length=16)  # webhook | cdc | import
    status: str = Field(default=InboxStatus.PENDING.value, max_length=16)
    reason: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    deliveries: int = 1
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column(nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=utc_column(nullable=False))


class WriteLedger(SQLModel, table=True):
    """Each QBO write we made: its echo (same SyncToken, same owned fields) is ours to drop."""

    __tablename__ = "qbo_write_ledger"
    __table_args__ = (
        sa.UniqueConstraint("realm_id", "entity", "entity_id", "sync_token", name="uq_qbo_ledger_write"),
    )

    id: int | None = Field(default=None, primary_key=True)
    realm_id: str = Field(max_length=EXTERNAL_ID_LENGTH)
    entity: str = Field(max_length=32)
    entity_id: str = Field(max_length=EXTERNAL_ID_LENGTH)
    sync_token: str = Field(max_length=16)
    owned_hash: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column(nullable=False))


class Cursor(SQLModel, table=True):
    """A resumable position per tenant and stream: CDC watermark, import checkpoint."""

    __tablename__ = "qbo_cursor"
    __table_args__ = (sa.UniqueConstraint("tenant_id", "stream", name="uq_qbo_cursor_stream"),)

    id: int | None = Field(default=None, primary_key=True)
    tenant_id: str = Field(max_length=64)
    stream: str = Field(max_length=64)
    value: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=utc_column(nullable=False))


class SyncRun(SQLModel, table=True):
    """One sync run (import, poll, push, sync now) with its counts and errors, for the card."""

    __tablename__ = "qbo_sync_run"

    id: int | None = Field(default=None, primary_key=True)
    tenant_id: str = Field(max_length=64, index=True)
    kind: str = Field(max_length=32)
    status: str = Field(default=RunStatus.RUNNING.value, max_length=16)
    counts: dict[str, Any] = _json()
    errors: list[Any] = Field(default_factory=list, sa_column=sa.Column(sa.JSON, nullable=False))
    started_at: datetime = Field(default_factory=utcnow, sa_column=utc_column(nullable=False))
    finished_at: datetime | None = Field(default=None, sa_column=utc_column())


class AutomationRun(SQLModel, table=True):
    """The claim that makes a trigger fire once per tenant, trigger and subject, ever."""

    __tablename__ = "qbo_automation_run"
    __table_args__ = (
        sa.UniqueConstraint("tenant_id", "trigger", "subject_id", name="uq_qbo_automation_claim"),
    )

    id: int | None = Field(default=None, primary_key=True)
    tenant_id: str = Field(max_length=64)
    trigger: str = Field(max_length=64)
    subject_id: str = Field(max_length=64)
    idempotency_key: str = Field(max_length=100)
    status: str = Field(default="claimed", max_length=16)
    payload: dict[str, Any] = _json()
    claimed_at: datetime = Field(default_factory=utcnow, sa_column=utc_column(nullable=False))
    fired_at: datetime | None = Field(default=None, sa_column=utc_column())


metadata = SQLModel.metadata
