"""`crm-qbo reconcile`: after a real sync the books match; every difference made afterwards on
either side is listed, and the exit status says whether the books match."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

from click.testing import CliRunner
from flask.cli import ScriptInfo

from crm_qbo_plugin import EventType, LineItem, Payment, PaymentSource
from crm_qbo_plugin.cli import plugin_cli
from crm_qbo_plugin.reconcile.run import reconcile
from crm_qbo_plugin.runtime.clients import client_for
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


def run_cli(app, *args):
    return CliRunner().invoke(plugin_cli, ["reconcile", TENANT, *args], obj=ScriptInfo(create_app=lambda: app))


def test_books_match_after_a_sync_and_every_later_difference_is_listed(plugin_config, fake_host, sandbox_url):
    app, realm = make_app(plugin_config, fake_host, sandbox_url)
    connect(app, sandbox_url, realm)
    fake_host.contacts[(TENANT, "c1")] = contact()
    fake_host.invoices[(TENANT, "inv1")] = invoice()
    fake_host.payments[(TENANT, "p1")] = Payment(
        id="p1", contact_id="c1", source=PaymentSource.SUBSCRIPTION, amount=Decimal("19.99"), currency="USD",
        paid_at=datetime.now(UTC), lines=(LineItem(name="Monthly plan", quantity=Decimal(1), unit_price=Decimal("19.99")),))
    publish(app, EventType.INVOICE_SENT, "inv1")
    publish(app, EventType.PAYMENT_RECEIVED, "p1", source=PaymentSource.SUBSCRIPTION)
    run_worker(app)

    clean = run_cli(app)
    assert clean.exit_code == 0, clean.output
    assert "the books match" in clean.output
    assert "compared 1 contacts, 1 invoices, 1 sales receipts, 0 payments" in clean.output

    state = state_of(app)
    report = reconcile(state, TENANT)
    invoice_qbo = next(link.qbo_id for link in _links(state) if link.kind == "invoice")
    with client_for(state, realm) as qbo:  # someone edits the invoice in QuickBooks …
        current = qbo.read("Invoice", invoice_qbo)
        line = {**current["Line"][0], "Amount": Decimal("120.00"),
                "SalesItemLineDetail": {**current["Line"][0]["SalesItemLineDetail"], "Qty": Decimal(1), "UnitPrice": Decimal("120.00")}}
        qbo.update("Invoice", {"Id": invoice_qbo, "SyncToken": current["SyncToken"], "Line": [line]})
        stray = qbo.create("Customer", {"DisplayName": "Walk-in Customer"})["Id"]  # … and adds a customer
    fake_host.invoices[(TENANT, "inv2")] = invoice("inv2")  # sent in the CRM, but never published
    drifted = run_cli(app, "--json")
    assert drifted.exit_code == 1, drifted.output
    found = {(d["kind"], d["problem"], d["crm_id"], d["qbo_id"], d["crm_value"], d["qbo_value"])
             for d in json.loads(drifted.output)["differences"]}
    assert found == {
        ("invoice", "total", "inv1", invoice_qbo, "100.00", "120.00"),
        ("customer", "missing_in_crm", None, stray, None, "Walk-in Customer"),
        ("invoice", "not_synced", "inv2", None, None, None),
    }
    assert report.matches  # the report taken before the edits


def test_a_location_that_is_not_connected_cannot_be_reconciled(plugin_config, fake_host, sandbox_url):
    app, _realm = make_app(plugin_config, fake_host, sandbox_url)
    result = run_cli(app)
    assert result.exit_code == 1
    assert "is not connected to QuickBooks" in result.output


def _links(state):
    from sqlmodel import select

    from crm_qbo_plugin.store.db import session
    from crm_qbo_plugin.store.tables import Link

    with session(state.engine) as db:
        return list(db.exec(select(Link)))
