"""A backlog of invoices whose contacts are new to QBO: the batch leader links or creates their
customers first (one e-mail query for them all), then sends the invoices as one batch."""

from __future__ import annotations

from crm_qbo_plugin.events import EventType
from crm_qbo_plugin.runtime.clients import client_for
from crm_qbo_plugin.store.links import get_link
from tests.integration.outbound_helpers import (
    TENANT,
    connect,
    contact,
    invoice,
    make_app,
    proxied,
    publish,
    qbo_rows,
    run_worker,
    state_of,
)


def test_new_customers_are_linked_then_their_invoices_batched(plugin_config, fake_host, sandbox_url):
    with proxied(sandbox_url) as proxy:
        app, realm = make_app(plugin_config, fake_host, sandbox_url, api_url=proxy.url)
        connect(app, sandbox_url, realm)
        fake_host.contacts[(TENANT, "c0")] = contact("c0", email="c0@example.com", first="Zero")
        fake_host.invoices[(TENANT, "first")] = invoice("first", "c0")
        publish(app, EventType.INVOICE_SENT, "first")
        run_worker(app)  # links the item
        with app.app_context(), client_for(state_of(app), realm) as qbo:
            known = qbo.create("Customer", {"DisplayName": "Known Three", "PrimaryEmailAddr": {"Address": "C3@Example.com"}})
        for n in range(1, 8):
            email = None if n == 7 else f"c{n}@example.com"
            fake_host.contacts[(TENANT, f"c{n}")] = contact(f"c{n}", email=email, first=f"Person{n}")
            for k in range(2):
                fake_host.invoices[(TENANT, f"i{n}-{k}")] = invoice(f"i{n}-{k}", f"c{n}")
                publish(app, EventType.INVOICE_SENT, f"i{n}-{k}")
        proxy.requests.clear()
        run_worker(app)
        batches = proxy.writes("/batch")
        singles = proxy.writes("/invoice")
        creates = [r for r in proxy.writes("/customer") if "Id" not in r["body"]]
        adopted = [r for r in proxy.writes("/customer") if "Id" in r["body"]]
        lookups = [r for r in proxy.requests if r["path"].endswith("/query") and "PrimaryEmailAddr" in str(r.get("body"))]
        assert len(qbo_rows(app, realm, "Invoice")) == 15
        customers = qbo_rows(app, realm, "Customer")
    assert len(batches) == 1 and len(batches[0]["body"]["BatchItemRequest"]) == 12
    assert len(singles) == 2  # the contact without an e-mail goes the single path
    assert len(creates) == 5 + 1  # c1, c2, c4, c5, c6 by the leader; c7 on the single path
    assert [r["body"]["Id"] for r in adopted] == [known["Id"]]  # c3's e-mail: linked and updated, not created
    assert len(lookups) == 1  # one for the six contacts with an e-mail (c7 has none to look up)
    assert len(customers) == 8
    state = state_of(app)
    assert get_link(state, TENANT, "contact", "c3").qbo_id == known["Id"]  # adopted by e-mail, not created
    assert len({get_link(state, TENANT, "contact", f"c{n}").qbo_id for n in range(8)}) == 8
    assert all(get_link(state, TENANT, "invoice", f"i{n}-{k}").status == "synced" for n in range(1, 8) for k in range(2))
