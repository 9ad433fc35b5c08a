"""rq entry points for inbound sync. Each takes an id only (a realm id or a tenant id) and runs
inside the host app's context, which the worker command pushes before it starts."""

from __future__ import annotations

import time

from crm_qbo_plugin import logs
from crm_qbo_plugin.inbound.cdc import poll
from crm_qbo_plugin.inbound.drain import drain_realm
from crm_qbo_plugin.inbound.enqueue import (
    GATHER_SECONDS,
    drain_flag,
    in_burst,
    poll_flag,
    xero_poll_flag,
)
from crm_qbo_plugin.inbound.importer import run_import as import_tenant
from crm_qbo_plugin.inbound.xero_import import run_xero_import
from crm_qbo_plugin.inbound.xero_poll import poll_xero
from crm_qbo_plugin.runtime.services import current
from crm_qbo_plugin.store.connections import connection_by_id, connection_for
from crm_qbo_plugin.store.types import Provider


def _text_id(value: object, what: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 64:
        raise TypeError(f"{what} must be a non-empty id string")
    return value


def drain_inbox(realm_id: str) -> str:
    """Apply a realm's pending webhook notices in order (in a burst, after gathering them briefly)."""
    state = current()
    realm_id = _text_id(realm_id, "realm_id")
    if in_burst(state.redis, realm_id):
        time.sleep(GATHER_SECONDS)  # the flag is still set: the burst's next notices queue no job
    state.redis.delete(drain_flag(realm_id))  # from now on a new notice queues a new drain
    with logs.bind(realm=realm_id):  # the drain adds the realm's tenant
        result = drain_realm(state, realm_id)
    return f"applied={result.applied} skipped={result.skipped} dead={result.dead} stopped={result.stopped}"


def poll_cdc(tenant: str) -> str:
    """One CDC poll for a tenant (then its pending notices)."""
    state = current()
    tenant = _text_id(tenant, "tenant")
    state.redis.delete(poll_flag(tenant))  # from now on a click or a tick queues a new poll
    with logs.bind(tenant=tenant):  # the poll adds the tenant's realm
        run = poll(state, tenant)
    return run.status if run is not None else "not-connected"


def run_import(tenant: str) -> str:
    """Import (or resume importing) a tenant's customers and invoices from its books."""
    state, tenant = current(), _text_id(tenant, "tenant")
    conn = connection_for(state.engine, tenant)
    with logs.bind(tenant=tenant):
        if conn is not None and conn.provider == Provider.XERO.value:
            run = run_xero_import(state, tenant)
        else:
            run = import_tenant(state, tenant)
    return run.status if run is not None else "nothing-to-do"



def poll_xero_connection(connection_id: int) -> str:
    """One modified-since poll of a Xero connection (the scheduler queues one per connected one)."""
    state = current()
    state.redis.delete(xero_poll_flag(int(connection_id)))  # from now on a webhook queues a new poll
    conn = connection_by_id(state.engine, int(connection_id))
    if conn is None:
        return "not-connected"
    with logs.bind(tenant=conn.tenant_id, realm=conn.realm_id):
        result = poll_xero(state, conn.tenant_id)
    return f"{result.status} applied={result.applied} skipped={result.skipped}"
