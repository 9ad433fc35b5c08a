"""The wrapper every push handler runs in: the books client for the row (QuickBooks' or Xero's,
`tracked` or `tracked_xero`), and the record's visible status on its link kept in step with what
happened (failed with the books' message and what to do, conflict, pending with the reason it
waits)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import TypeVar

from crm_qbo_plugin.mapping.invoice import MappingError
from crm_qbo_plugin.mapping.xero_invoice import MappingError as XeroMappingError
from crm_qbo_plugin.outbound.context import Push, RecordPush
from crm_qbo_plugin.outbound.failures import PushFailed, explain, explain_xero
from crm_qbo_plugin.outbound.processor import Handler, RetryLater, Skip
from crm_qbo_plugin.outbound.xero_context import XeroPush
from crm_qbo_plugin.qbo import AuthenticationError, QboError, ThrottledError, TransientError
from crm_qbo_plugin.runtime.clients import client_for, xero_client_for
from crm_qbo_plugin.runtime.services import Services
from crm_qbo_plugin.store.links import PENDING, SYNCED, get_link, set_status
from crm_qbo_plugin.store.outbox import completing
from crm_qbo_plugin.store.tables import Connection, OutboxEvent
from crm_qbo_plugin.xero import ReconnectRequired as XeroReconnectRequired
from crm_qbo_plugin.xero import ThrottledError as XeroThrottledError
from crm_qbo_plugin.xero import TransientError as XeroTransientError
from crm_qbo_plugin.xero import XeroError

KindOf = Callable[[OutboxEvent], str]
P = TypeVar("P", bound=RecordPush)


def tracked(kind_of: KindOf, what: str, push_fn: Callable[[Push], None]) -> Handler:
    """A processor handler running `push_fn` with the record's status kept on its link."""

    def handler(state: Services, row: OutboxEvent, conn: Connection) -> None:
        if not conn.realm_id:
            raise RetryLater("the connection has no QuickBooks company yet")
        kind = kind_of(row)
        with client_for(state, conn.realm_id) as qbo:
            push = Push(state, conn, row, qbo)
            with completing(row, kind):
                run_tracked(push, kind, what, push_fn)

    return handler


def tracked_xero(kind_of: KindOf, what: str, push_fn: Callable[[XeroPush], None]) -> Handler:
    """`tracked` for a Xero connection: `push_fn` gets the organisation's client."""

    def handler(state: Services, row: OutboxEvent, conn: Connection) -> None:
        if not conn.realm_id:
            raise RetryLater("the connection has no Xero organisation yet")
        push = XeroPush(state, conn, row, xero_client_for(state, conn.realm_id))
        kind = kind_of(row)
        try:
            with completing(row, kind):
                run_tracked(push, kind, what, push_fn)
        finally:
            push.xero.close()

    return handler


def run_tracked(push: P, kind: str, what: str, push_fn: Callable[[P], None]) -> None:
    state, tenant, crm_id = push.state, push.tenant, push.row.subject_id
    try:
        push_fn(push)
    except Skip:
        # Nothing to write: a record that was waiting (to be reconnected, or retried) and is in
        # QuickBooks already is as synced as it was before.
        link = get_link(state, tenant, kind, crm_id)
        if link is not None and link.status == PENDING and link.qbo_id:
            set_status(state, tenant, kind, crm_id, SYNCED, None)
        raise
    except Exception as exc:
        shown = show_failure(state, tenant, kind, crm_id, exc, what, push.txn_date, push.doc_number)
        if shown is exc:
            raise
        raise shown from None


def show_failure(state: Services, tenant: str, kind: str, crm_id: str, exc: Exception, what: str,
                 txn_date: date | None = None, doc_number: str | None = None) -> Exception:
    """Keep the record's link in step with a failed push, and return what the push fails with (a
    QBO refusal becomes the `PushFailed` that says what to do). The link side of the one triage
    of a failed push, for a single push and a batch's member alike (the row side is
    `processor.settle_failure`)."""
    if isinstance(exc, MappingError | XeroMappingError):
        exc = PushFailed(str(exc))
    if isinstance(exc, PushFailed):
        set_status(state, tenant, kind, crm_id, exc.status, str(exc))
    elif isinstance(exc, (ThrottledError, TransientError, RetryLater, XeroThrottledError, XeroTransientError)):
        link = get_link(state, tenant, kind, crm_id)
        if link is None or link.status != SYNCED:
            set_status(state, tenant, kind, crm_id, PENDING, f"waiting to retry: {exc}")
    elif isinstance(exc, QboError) and not isinstance(exc, AuthenticationError):
        exc = explain(exc, what, txn_date, doc_number)
        set_status(state, tenant, kind, crm_id, exc.status, str(exc))
    elif isinstance(exc, XeroError) and not isinstance(exc, XeroReconnectRequired):
        exc = explain_xero(exc, what)
        set_status(state, tenant, kind, crm_id, exc.status, str(exc))
    return exc
