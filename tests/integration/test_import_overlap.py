"""The import asks for the first page of each phase beside the COUNTs, not after them: one round
trip of QuickBooks' latency before the first page applies, not two (issue #20)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from flask import Flask

from crm_qbo_plugin.inbound.importer import run_import
from crm_qbo_plugin.qbo import QboClient
from crm_qbo_plugin.qbo.client import Where
from crm_qbo_plugin.runtime.clients import client_for
from crm_qbo_plugin.state import get_state
from crm_qbo_plugin.store.tables import RunStatus
from reference_crm.app import create_app
from tests.support.connected import connect_directly
from tests.support.reference_crm_app import close, crm_config, new_location
from tests.support.sandbox_qbo import create_company, plugin_overrides, register_app


@pytest.fixture
def crm(plugin_config: dict[str, Any], sandbox_url: str) -> Iterator[Flask]:
    register_app(sandbox_url)
    app = create_app(crm_config({**plugin_config, **plugin_overrides(sandbox_url)}))
    yield app
    close(app)


def test_the_first_pages_are_asked_for_while_the_counts_run(crm, sandbox_url, monkeypatch):
    tenant = new_location(crm.test_client())["id"]
    realm = create_company(sandbox_url, name="Overlap Books")
    connect_directly(crm, tenant, sandbox_url, realm, import_invoices=True)
    state = get_state(crm)
    line = {"DetailType": "SalesItemLineDetail", "Amount": Decimal("5.00"),
            "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "Qty": Decimal("1"), "UnitPrice": Decimal("5.00")}}
    with crm.app_context(), client_for(state, realm) as qbo:
        customers = [qbo.create("Customer", {"DisplayName": f"Overlap {n}"}) for n in range(3)]
        for customer in customers:
            qbo.create("Invoice", {"CustomerRef": {"value": customer["Id"]}, "Line": [line]})
    paged = {"Customer": threading.Event(), "Invoice": threading.Event()}
    real_query, real_count = QboClient.query, QboClient.count

    def query(self: QboClient, statement: str) -> list[dict[str, Any]]:
        for entity, event in paged.items():
            if f"FROM {entity} " in statement:
                event.set()
        return real_query(self, statement)

    def count(self: QboClient, entity: str, where: Where = None) -> int:
        # a COUNT answers only once its phase's first page has been asked for (10 s: a safety bound)
        if not paged[entity].wait(10):
            raise AssertionError(f"no {entity} page was asked for while its COUNT ran")
        return real_count(self, entity, where)

    monkeypatch.setattr(QboClient, "query", query)
    monkeypatch.setattr(QboClient, "count", count)
    with crm.app_context():
        run = run_import(state, tenant)
    assert run is not None and run.status == RunStatus.SUCCEEDED.value and run.errors == []
    assert run.counts == {"customers_total": 3, "customers_done": 3, "invoices_total": 3, "invoices_done": 3}
    with crm.app_context():
        assert len(state.host.list_record_ids(tenant, "contact")) == 3
        assert len(state.host.list_record_ids(tenant, "invoice")) == 3
