"""The push's link write and its outbox row's completion commit together (store/outbox.py)."""

from __future__ import annotations

import pytest

from crm_qbo_plugin.events import EventType
from crm_qbo_plugin.outbound.processor import process
from crm_qbo_plugin.store.db import session
from crm_qbo_plugin.store.links import get_link
from crm_qbo_plugin.store.tables import OutboxEvent
from tests.integration.outbound_helpers import (
    TENANT,
    connect,
    contact,
    invoice,
    make_app,
    publish,
    qbo_rows,
    state_of,
)


class Killed(BaseException):
    """The worker dies (a SIGKILL, an OOM) right after the handler returned."""


def test_a_worker_killed_after_the_link_write_leaves_the_row_done_with_its_link(plugin_config, fake_host, sandbox_url):
    app, realm = make_app(plugin_config, fake_host, sandbox_url)
    connect(app, sandbox_url, realm)
    fake_host.contacts[(TENANT, "c1")] = contact()
    fake_host.invoices[(TENANT, "inv1")] = invoice()
    row_id = publish(app, EventType.INVOICE_UPDATED, "inv1")
    state = state_of(app)
    real = state.handlers["quickbooks"]["invoice.updated"]

    def push_then_die(*args):
        real(*args)
        raise Killed

    state.handlers["quickbooks"]["invoice.updated"] = push_then_die
    with app.app_context(), pytest.raises(Killed):
        process(state, row_id)
    link = get_link(state, TENANT, "invoice", "inv1")
    assert link is not None and (link.status, link.qbo_id) == ("synced", qbo_rows(app, realm, "Invoice")[0]["Id"])
    with session(state.engine) as db:
        row = db.get(OutboxEvent, row_id)
        assert row is not None and (row.status, row.last_error, row.lease_until) == ("done", None, None)

