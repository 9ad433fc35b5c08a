"""Enqueue the inbound jobs (ids only: a realm id or a tenant id, never data).

They go to the front of the queue: a drain, a poll or an import is one job per realm or tenant
(never a pile: each is queued once at a time) and what users wait for, so QuickBooks' news is
not held up behind a backlog of outbound pushes (a reconnect's retried records, a bulk send).
Nothing reads their return values, so none is kept (`result_ttl=0`: rq deletes a finished job
instead of storing its result and listing it as finished — fewer Redis writes per job)."""

from __future__ import annotations

import logging

import redis

from crm_qbo_plugin.runtime.services import Services
from crm_qbo_plugin.store.tables import Connection
from crm_qbo_plugin.store.types import Provider

log = logging.getLogger(__name__)

DRAIN_INBOX = "crm_qbo_plugin.jobs.inbound_tasks.drain_inbox"
POLL_CDC = "crm_qbo_plugin.jobs.inbound_tasks.poll_cdc"
RUN_IMPORT = "crm_qbo_plugin.jobs.inbound_tasks.run_import"
POLL_XERO = "crm_qbo_plugin.jobs.inbound_tasks.poll_xero_connection"
DRAIN_FLAG_SECONDS = 60
POLL_FLAG_SECONDS = 300
# A drain that starts within BURST_SECONDS of the realm's previous drain (a burst of notices) first
# waits GATHER_SECONDS with its flag still set: the notices arriving meanwhile queue no job of their
# own and are read and applied together (one query per entity, one host write, one commit).
BURST_SECONDS = 2.0
GATHER_SECONDS = 0.5


def drain_flag(realm_id: str) -> str:
    return f"crm-qbo:inbound:drain-queued:{realm_id}"


def burst_marker(realm_id: str) -> str:
    return f"crm-qbo:inbound:drained-recently:{realm_id}"


def request_drain(state: Services, realm_id: str) -> bool:
    """Queue one drain job for the realm unless one is queued and not yet started.

    One Redis round trip when a job is already queued (the usual case in a burst). The job clears
    the flag when it starts draining, so a notice recorded after that queues a new job. If Redis is
    unreachable the notices stay pending in the database; the next poll drains them.
    """
    try:
        if not state.redis.set(drain_flag(realm_id), "1", nx=True, ex=DRAIN_FLAG_SECONDS):
            return False
        state.queue.enqueue(DRAIN_INBOX, realm_id, job_timeout=900, result_ttl=0, failure_ttl=86400, at_front=True)
    except redis.RedisError as exc:
        log.warning("inbound.drain_not_queued error=%s next=poll", type(exc).__name__)
        return False
    return True


def mark_drained(redis_client: redis.Redis, realm_id: str) -> None:
    """Note that the realm was just drained: a drain starting soon after is part of a burst."""
    redis_client.set(burst_marker(realm_id), "1", px=int(BURST_SECONDS * 1000))


def in_burst(redis_client: redis.Redis, realm_id: str) -> bool:
    return bool(redis_client.exists(burst_marker(realm_id)))


def poll_flag(tenant: str) -> str:
    return f"crm-qbo:inbound:poll-queued:{tenant}"


def enqueue_poll(state: Services, tenant: str) -> bool:
    """Queue one CDC poll for the tenant unless one is queued and not yet started; returns whether
    it queued one. The scheduler's ticks and "Sync now" clicks behind a long queue add no second
    poll (one poll reads every change since the cursor). The job clears the flag when it starts;
    a lost job's flag runs out after POLL_FLAG_SECONDS."""
    if not state.redis.set(poll_flag(tenant), "1", nx=True, ex=POLL_FLAG_SECONDS):
        return False
    state.queue.enqueue(POLL_CDC, tenant, job_timeout=1800, result_ttl=0, failure_ttl=86400, at_front=True)
    return True


def enqueue_import(state: Services, tenant: str) -> None:
    state.queue.enqueue(RUN_IMPORT, tenant, job_timeout=4 * 3600, result_ttl=0, failure_ttl=86400, at_front=True)


def xero_poll_flag(connection_id: int) -> str:
    return f"crm-qbo:inbound:xero-poll-queued:{connection_id}"


def request_xero_poll(state: Services, connection_id: int) -> bool:
    """Queue one Xero poll (which also applies the organisation's pending webhook notices) unless
    one is queued and not yet started. If Redis is unreachable the notices stay pending in the
    database; the scheduler's next poll applies them."""
    try:
        if not state.redis.set(xero_poll_flag(connection_id), "1", nx=True, ex=POLL_FLAG_SECONDS):
            return False
        state.queue.enqueue(POLL_XERO, connection_id, job_timeout=1800, result_ttl=0, failure_ttl=86400,
                            at_front=True)
    except redis.RedisError as exc:
        log.warning("inbound.xero_poll_not_queued error=%s next=scheduler", type(exc).__name__)
        return False
    return True


def request_sync(state: Services, conn: Connection) -> bool:
    """"Sync now": queue the poll of the connection's books (QuickBooks' CDC poll or Xero's
    modified-since poll, which also applies pending Xero webhook notices)."""
    if conn.provider == Provider.XERO.value:
        return conn.id is not None and request_xero_poll(state, conn.id)
    return enqueue_poll(state, conn.tenant_id)
