"""The wrapper every push handler runs in: a QBO client for the row, and the record's visible
status on its link kept in step with what happened (failed with QBO's message and what to do,
conflict, pending with the reason it waits)."""

from __future__ import annotations

from collections.abc import Callable

from crm_qbo_plugin.mapping.invoice import MappingError
from crm_qbo_plugin.outbound.context import Push
from crm_qbo_plugin.outbound.failures import PushFailed, explain
from crm_qbo_plugin.outbound.processor import Handler, RetryLater, Skip
from crm_qbo_plugin.qbo import AuthenticationError, QboError, ThrottledError, TransientError
from crm_qbo_plugin.runtime.clients import client_for
from crm_qbo_plugin.runtime.services import Services
from crm_qbo_plugin.store.links import PENDING, SYNCED, get_link, set_status
from crm_qbo_plugin.store.tables import Connection, OutboxEvent

KindOf = Callable[[OutboxEvent], str]


def tracked(kind_of: KindOf, what: str, push_fn: Callable[[Push], None]) -> Handler:
    """A processor handler running `push_fn` with the record's status kept on its link."""

    def handler(state: Services, row: OutboxEvent, conn: Connection) -> None:
        if not conn.realm_id:
            raise RetryLater("the connection has no QuickBooks company yet")
        kind = kind_of(row)
        with client_for(state, conn.realm_id) as qbo:
            push = Push(state, conn, row, qbo)
            run_tracked(push, kind, what, push_fn)

    return handler


def run_tracked(push: Push, kind: str, what: str, push_fn: Callable[[Push], None]) -> None:
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
    except MappingError as exc:
        failure = PushFailed(str(exc))
        set_status(state, tenant, kind, crm_id, failure.status, str(failure))
        raise failure from None
    except PushFailed as exc:
        set_status(state, tenant, kind, crm_id, exc.status, str(exc))
        raise
    except (ThrottledError, TransientError, RetryLater) as exc:
        link = get_link(state, tenant, kind, crm_id)
        if link is None or link.status != SYNCED:
            set_status(state, tenant, kind, crm_id, PENDING, f"waiting to retry: {exc}")
        raise
    except AuthenticationError:
        raise
    except QboError as exc:
        failure = explain(exc, what, push.txn_date, push.doc_number)
        set_status(state, tenant, kind, crm_id, failure.status, str(failure))
        raise failure from None
