"""A burst of webhook notices is read with `Id IN (…)` queries, one per entity, not one read per
notice; what is applied, and in which order, stays what the per-notice reads gave."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from crm_qbo_plugin import Origin
from tests.support.inbound import TENANT, inbound_env, our_write


@pytest.fixture
def env(plugin_config, sandbox_url):
    with inbound_env(plugin_config, sandbox_url, import_invoices=True) as env:
        yield env


def _stats(env, reset: bool = False) -> dict[str, Any]:
    answer = requests.get(f"{env.sandbox_url}/_sandbox/stats", params={"reset": "1"} if reset else None, timeout=10)
    answer.raise_for_status()
    return dict(answer.json()["by_endpoint"])


def _reads(stats: dict[str, Any]) -> dict[str, int]:
    return {k: v for k, v in stats.items() if k in ("query", "customer.read", "invoice.read")}


def test_a_burst_of_customer_notices_costs_one_query(env):
    with env.qbo() as qbo:
        created = [qbo.create("Customer", {"DisplayName": f"Burst {n}", "PrimaryEmailAddr": {"Address": f"b{n}@example.com"}})
                   for n in range(12)]
        # a customer made inactive is still returned (a query skips inactive ones unless asked)
        qbo.update("Customer", {"Id": created[3]["Id"], "SyncToken": created[3]["SyncToken"], "Active": False})
    env.deliver()
    _stats(env, reset=True)
    env.work()
    assert _reads(_stats(env)) == {"query": 1}
    links = {row["qbo_id"]: row for row in env.links("contact")}
    inactive = created[3]["Id"]
    assert sorted(links) == sorted(c["Id"] for c in created if c["Id"] != inactive)
    assert sorted(env.host.writes) == sorted(("contact", row["crm_id"], Origin.QBO) for row in links.values())
    # read as it is now (inactive), as a read by id would have: a new inactive customer is not imported
    assert {(row["entity_id"], row["status"], row["reason"]) for row in env.inbox() if row["entity_id"] == inactive} == {
        (inactive, "skipped", "an inactive customer is not imported")}
    assert len(env.host.contacts) == 11


def test_mixed_notices_keep_echo_detection_and_deleted_invoices(env):
    with env.qbo() as qbo:
        customer = qbo.create("Customer", {"DisplayName": "Mixed Ltd"})
        kept = qbo.create("Invoice", {"CustomerRef": {"value": customer["Id"]},
                                      "Line": [{"DetailType": "SalesItemLineDetail", "Amount": "10.00",
                                                "SalesItemLineDetail": {"ItemRef": {"value": "1"}}}]})
        gone = qbo.create("Invoice", {"CustomerRef": {"value": customer["Id"]},
                                      "Line": [{"DetailType": "SalesItemLineDetail", "Amount": "20.00",
                                                "SalesItemLineDetail": {"ItemRef": {"value": "1"}}}]})
    env.sync()
    assert {row["qbo_id"] for row in env.links("invoice")} == {kept["Id"], gone["Id"]}
    env.host.writes.clear()
    # our own write (its link already holds the version: dropped) and a deletion (not returned by the query: read one by one)
    our_write(env, "contact", env.link("contact", customer["Id"])["crm_id"], "Customer",
              lambda qbo: qbo.update("Customer", {"Id": customer["Id"], "SyncToken": customer["SyncToken"],
                                                  "PrimaryPhone": {"FreeFormNumber": "555-0111"}}))
    with env.qbo() as qbo:
        current = qbo.read("Invoice", gone["Id"])
        qbo.delete("Invoice", gone["Id"], current["SyncToken"])
    env.deliver()
    _stats(env, reset=True)
    env.work()
    # one query per entity; the deleted invoice, which the query cannot return, is read by id
    # (a refused read is not counted as a read by the sandbox)
    assert _reads(_stats(env)) == {"query": 2}
    assert env.host.writes == [("invoice", env.link("invoice", gone["Id"])["crm_id"], Origin.QBO)]
    assert env.link("invoice", gone["Id"])["status"] == "deleted"
    assert env.link("contact", customer["Id"])["sync_token"] == "1"
    newest = [row for row in env.inbox() if row["entity"] == "Customer"][-1]
    assert (newest["status"], newest["reason"]) == ("skipped", "the contact already holds this version")
    assert env.host.contacts[(TENANT, env.link("contact", customer["Id"])["crm_id"])].phone == ""  # not written back
