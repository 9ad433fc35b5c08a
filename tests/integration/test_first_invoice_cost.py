"""What a first invoice costs the outbox: no batch probe without a backlog (outbound/batching.py)."""

from __future__ import annotations

from crm_qbo_plugin.events import EventType
from tests.integration.outbound_helpers import (
    TENANT,
    connect,
    contact,
    invoice,
    make_app,
    publish,
    qbo_rows,
    run_worker,
    state_of,
)


def test_a_lone_first_invoice_reads_its_records_once_and_claims_no_batch(plugin_config, fake_host, sandbox_url):
    """No backlog, no batch: the leader's probe is one read, not host reads plus an empty claim."""
    import sqlalchemy as sa

    app, realm = make_app(plugin_config, fake_host, sandbox_url)
    connect(app, sandbox_url, realm)
    fake_host.contacts[(TENANT, "c1")] = contact()
    fake_host.invoices[(TENANT, "inv1")] = invoice()
    publish(app, EventType.INVOICE_SENT, "inv1")
    reads: list[str] = []
    for name in ("get_invoice", "get_contact"):
        real_read = getattr(fake_host, name)
        setattr(fake_host, name, lambda tenant, crm_id, _real=real_read, _name=name: reads.append(_name) or _real(tenant, crm_id))
    outbox_writes: list[str] = []
    state = state_of(app)
    sa.event.listen(state.engine, "before_cursor_execute",
                    lambda _c, _cur, statement, *_a: outbox_writes.append(statement)
                    if statement.lstrip().upper().startswith("UPDATE QBO_OUTBOX") else None)
    run_worker(app)
    assert len(qbo_rows(app, realm, "Invoice")) == 1
    assert reads == ["get_invoice", "get_contact"]
    assert len(outbox_writes) == 2  # the claim, and the completion in the invoice's link write: no empty
    # batch claim or release, no separate finish
