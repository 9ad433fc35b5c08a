"""One triage for a failed push: an invoice QBO refuses inside a `/batch` ends exactly as one it
refuses on its own single push — the same outbox row status and reason, the same link status and
message — whether the refusal is passing (a SystemFault: retried with backoff) or needs a person
(a validation fault: failed, with what to change)."""

from __future__ import annotations

import re

import pytest
import requests
from sqlmodel import select

from crm_qbo_plugin.events import EventType
from crm_qbo_plugin.outbound.processor import process
from crm_qbo_plugin.store.db import session
from crm_qbo_plugin.store.links import INVOICE, get_link
from crm_qbo_plugin.store.tables import OutboxEvent
from tests.integration.outbound_helpers import (
    TENANT,
    connect,
    contact,
    invoice,
    make_app,
    publish,
    run_worker,
    state_of,
)

FAULTS = {
    "system_fault": {"code": 10000, "message": "An application error has occurred", "detail": "injected"},
    "validation_fault": {"code": 6000, "message": "A business validation error has occurred",
                         "detail": "Line amount is not valid"},
}


def _fault(sandbox_url: str, **spec) -> None:
    response = requests.post(f"{sandbox_url}/_sandbox/faults", json=spec, timeout=30)
    assert response.status_code == 201, response.text


def _clear_faults(sandbox_url: str) -> None:
    assert requests.delete(f"{sandbox_url}/_sandbox/faults", timeout=30).status_code in (200, 204)


def _without_transport(text: str | None) -> str | None:
    """QBO's error text less what only a whole HTTP answer has (a batch item has no status or tid)."""
    return re.sub(r", status=\d+, intuit_tid=[^)]*", "", text) if text is not None else None


def _ending(app, row_id: int, crm_id: str) -> tuple:
    state = state_of(app)
    with session(state.engine) as db:
        row = db.get(OutboxEvent, row_id)
    assert row is not None
    link = get_link(state, TENANT, INVOICE, crm_id)
    assert link is not None
    return row.status, _without_transport(row.last_error), link.status, _without_transport(link.last_error)


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_batch_member_and_a_single_push_refused_alike_end_alike(plugin_config, fake_host, sandbox_url, fault):
    app, realm = make_app(plugin_config, fake_host, sandbox_url)
    connect(app, sandbox_url, realm)
    fake_host.contacts[(TENANT, "c1")] = contact("c1")
    publish(app, EventType.CONTACT_CREATED, "c1")
    run_worker(app)  # the customer exists: neither path below makes one

    # The single path: one invoice alone (no backlog to batch), its create refused.
    fake_host.invoices[(TENANT, "solo")] = invoice("solo")
    solo = publish(app, EventType.INVOICE_SENT, "solo")
    _fault(sandbox_url, path=r"/invoice$", method="POST", times=50, **FAULTS[fault])
    process(state_of(app), solo)
    _clear_faults(sandbox_url)

    # The batch path: three invoices waiting, the leader's /batch answers the first two items with
    # the same fault (the leader's own, then a member's) and creates the third.
    rows = {}
    for name in ("b1", "b2", "b3"):
        fake_host.invoices[(TENANT, name)] = invoice(name)
        rows[name] = publish(app, EventType.INVOICE_SENT, name)
    _fault(sandbox_url, path="/batch/invoice", method="BATCH_ITEM", times=2, **FAULTS[fault])
    process(state_of(app), rows["b1"])

    member = _ending(app, rows["b2"], "b2")
    assert member == _ending(app, solo, "solo")
    assert member[0] == ("pending" if fault == "system_fault" else "failed")
    assert member[2] == ("pending" if fault == "system_fault" else "failed")
    assert _ending(app, rows["b3"], "b3")[0::2] == ("done", "synced")
    with session(state_of(app).engine) as db:
        statuses = {r.subject_id: r.status for r in db.exec(select(OutboxEvent).where(OutboxEvent.subject_id.in_(["b1", "b2", "b3"])))}
    assert statuses == {"b1": member[0], "b2": member[0], "b3": "done"}
