"""Process one outbox row: claim it, check the gate, hand it to its push handler, record the outcome.

The claim is a conditional UPDATE, so two workers that get the same row (a re-enqueue by the
sweeper while the first job still runs) cannot both push it. Transient failures put the row back
with a lease that ends after a backoff; the sweeper re-enqueues it then, so retries survive a
flushed Redis as well.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from datetime import datetime, timedelta

import redis
import sqlalchemy as sa

from crm_qbo_plugin import logs, metrics
from crm_qbo_plugin.host import Origin
from crm_qbo_plugin.outbound.decision import NOT_CONNECTED
from crm_qbo_plugin.outbound.decision import gate as decide_gate
from crm_qbo_plugin.outbound.failures import PushFailed
from crm_qbo_plugin.outbound.held import (
    WAITING_FOR_RECONNECT,
    PushInFlight,
    hold_disconnected,
    show_waiting,
)
from crm_qbo_plugin.qbo import (
    AuthenticationError,
    ReconnectRequired,
    ThrottledError,
    TransientError,
)
from crm_qbo_plugin.runtime.services import Services
from crm_qbo_plugin.runtime.status import mark_needs_reconnect
from crm_qbo_plugin.store import outbox
from crm_qbo_plugin.store.connections import connection_for
from crm_qbo_plugin.store.tables import Connection, ConnectionStatus, OutboxEvent, OutboxStatus
from crm_qbo_plugin.store.types import utcnow
from crm_qbo_plugin.xero import ReconnectRequired as XeroReconnectRequired
from crm_qbo_plugin.xero import ThrottledError as XeroThrottledError
from crm_qbo_plugin.xero import TransientError as XeroTransientError

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8

# Passing trouble: the books (QuickBooks or Xero) busy or down, a token Intuit did not accept even after one refresh (the next
# attempt refreshes again), Redis restarting, the database locked (SQLite past its busy timeout) or
# its connection lost (a PostgreSQL restart, a serialization failure, a pool timeout). Nothing about
# the row is wrong, so it is retried with backoff, never failed.
PASSING_TROUBLE: tuple[type[Exception], ...] = (
    ThrottledError, TransientError, AuthenticationError, XeroThrottledError, XeroTransientError, redis.RedisError,
    sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError,
)

Handler = Callable[[Services, OutboxEvent, Connection], None]
# The push handler per provider, then per host event type (outbound/handlers.py).
Handlers = dict[str, dict[str, Handler]]


class RetryLater(Exception):
    """A transient failure (throttling, timeouts, QBO busy): try the row again after a backoff."""


class Skip(Exception):
    """The event needs no push (e.g. nothing we own changed); the message says why."""


def backoff(attempts: int) -> timedelta:
    """Exponential backoff with full jitter: up to 15 s, 30 s, 60 s … capped at 30 minutes."""
    ceiling = min(15 * 2 ** max(attempts - 1, 0), 1800)
    return timedelta(seconds=random.uniform(ceiling / 2, ceiling))


def claim(state: Services, outbox_id: int, now: datetime) -> OutboxEvent | None:
    """Take the row if it is pending, or processing with an expired lease; None if someone has it."""
    return outbox.claim(state.engine, outbox_id, now)


def finish(state: Services, row: OutboxEvent, status: OutboxStatus, error: str | None = None,
           retry_at: datetime | None = None) -> None:
    if not (status is OutboxStatus.DONE and outbox.completed(row)):  # else the record's link write did it
        outbox.finish(state.engine, row, status, error, retry_at)
    metrics.count(state.redis, "pushes", outcome=status.value)
    metrics.count(state.redis, "failures", int(status is OutboxStatus.FAILED), kind="outbox_failed")


def gate(state: Services, row: OutboxEvent) -> tuple[Connection | None, str | None]:
    """Return the tenant's connection, or the reason this event must not be pushed."""
    conn = None if row.origin == Origin.QBO.value else connection_for(state.engine, row.tenant_id)
    live = conn is not None and conn.status != ConnectionStatus.DISCONNECTED.value
    decision = decide_gate(row.origin, live, conn.connected_at if conn is not None else None, row.occurred_at)
    return (conn, None) if decision.push else (None, decision.reason)


def _retry(state: Services, row: OutboxEvent, now: datetime, reason: str) -> str:
    if row.attempts >= MAX_ATTEMPTS:
        finish(state, row, OutboxStatus.FAILED, f"gave up after {row.attempts} attempts: {reason}")
        return OutboxStatus.FAILED.value
    finish(state, row, OutboxStatus.PENDING, reason, now + backoff(row.attempts))
    return "retry"


def _park(state: Services, row: OutboxEvent, now: datetime) -> str:
    """Wait without burning attempts until the tenant reconnects, listed on the card as pending."""
    show_waiting(state, row)
    finish(state, row, OutboxStatus.PENDING, WAITING_FOR_RECONNECT, now + timedelta(hours=1))
    return "parked"


def process(state: Services, outbox_id: int, now: datetime | None = None) -> str:
    """Run one outbox row to its next state; returns that state's name (for logs and tests)."""
    now = now or utcnow()
    row = claim(state, outbox_id, now)
    if row is None:
        return "not-claimed"
    logs.annotate(tenant=row.tenant_id)
    conn, reason = gate(state, row)
    logs.annotate(realm=conn.realm_id if conn is not None else None)
    if conn is None:
        if reason == NOT_CONNECTED:  # disconnected: kept on the card as "not synced", for Retry
            try:
                reason = hold_disconnected(state, row) or reason
            except PushInFlight as exc:
                return _retry(state, row, now, str(exc))
        finish(state, row, OutboxStatus.SKIPPED, reason)
        return OutboxStatus.SKIPPED.value
    if conn.status == ConnectionStatus.NEEDS_RECONNECT.value:
        return _park(state, row, now)
    handler = state.handlers.get(conn.provider, {}).get(row.event_type)
    if handler is None:
        finish(state, row, OutboxStatus.FAILED, f"no push handler for {row.event_type} events")
        return OutboxStatus.FAILED.value
    try:
        handler(state, row, conn)
    except Exception as exc:
        return settle_failure(state, row, conn, exc, now)
    finish(state, row, OutboxStatus.DONE)
    return OutboxStatus.DONE.value


def settle_failure(state: Services, row: OutboxEvent, conn: Connection, exc: Exception, now: datetime) -> str:
    """The row's next state after its push raised `exc`: the one triage of a failed push, for a
    single push and for a batch's member alike (the link side is `tracking.show_failure`)."""
    if isinstance(exc, ReconnectRequired | XeroReconnectRequired):
        mark_needs_reconnect(state, conn.realm_id or "")
        return _park(state, row, now)
    if isinstance(exc, PASSING_TROUBLE):
        # Only ReconnectRequired (handled above) needs a person. A retry replays the row's
        # requestids, so a QBO create whose link could not be saved comes back as the same record.
        return _retry(state, row, now, f"{type(exc).__name__}: {exc}")
    if isinstance(exc, Skip):
        finish(state, row, OutboxStatus.SKIPPED, str(exc))
        return OutboxStatus.SKIPPED.value
    if isinstance(exc, RetryLater):
        return _retry(state, row, now, str(exc))
    if isinstance(exc, PushFailed):  # expected: a person must act (the message says how), then Retry
        log.warning("outbound.needs_attention outbox_id=%s event_type=%s error=%s", row.id, row.event_type, type(exc).__name__)
    else:
        log.error("outbound.failed outbox_id=%s event_type=%s", row.id, row.event_type, exc_info=exc)
    finish(state, row, OutboxStatus.FAILED, f"{type(exc).__name__}: {exc}")
    return OutboxStatus.FAILED.value
