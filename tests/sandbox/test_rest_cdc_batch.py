"""CDC (window, cap, grouping, tombstones) and batch (limits, per-item faults)."""

from __future__ import annotations

from typing import Any

from tests.sandbox.conftest import Api, fault_code


def _cdc(api: Api, since: str, entities: str = "Customer,Invoice") -> Any:
    return api.get("cdc", entities=entities, changedSince=since)


def test_cdc_groups_orders_and_puts_deleted_last(api: Api, sandbox: Any) -> None:
    start = sandbox.clock.now()
    a = api.customer("A")
    sandbox.clock.advance(10)
    b = api.customer("B")
    inv1 = api.invoice(a["Id"], 1)
    inv2 = api.invoice(a["Id"], 2)
    api.post("invoice", {"Id": inv1["Id"], "SyncToken": "0"}, operation="delete")
    sandbox.clock.advance(10)
    api.create("Customer", {**a, "sparse": True, "Notes": "later"})
    got = _cdc(api, start.isoformat()).get_json()["CDCResponse"][0]["QueryResponse"]
    assert [list(g)[0] for g in got] == ["Customer", "Invoice"]
    assert [c["Id"] for c in got[0]["Customer"]] == [b["Id"], a["Id"]]
    assert got[0]["maxResults"] == 2 and got[0]["startPosition"] == 1
    assert [i["Id"] for i in got[1]["Invoice"]] == [inv2["Id"], inv1["Id"]]
    assert got[1]["Invoice"][1]["status"] == "Deleted"
    assert set(got[1]["Invoice"][1]) == {"status", "domain", "Id", "MetaData"}
    later = sandbox.clock.now().isoformat()
    assert _cdc(api, later).get_json()["CDCResponse"] == [{"QueryResponse": [{}]}]


def test_cdc_window_formats_and_errors(api: Api, sandbox: Any) -> None:
    api.customer("Old")
    sandbox.clock.advance(31 * 86400)
    api.token = sandbox.oauth.issue_tokens(api.realm)["access_token"]  # the old one expired
    too_old = (sandbox.clock.now().date().replace(day=1)).isoformat()
    old = _cdc(api, "2000-01-01")
    assert old.status_code == 400 and fault_code(old) == "500"
    assert "older than fixed days" in old.get_json()["Fault"]["Error"][0]["Detail"]
    assert _cdc(api, too_old).status_code == 200
    # a date-time without offset is read in the company's zone (Pacific)
    naive = sandbox.clock.now().astimezone().replace(tzinfo=None).isoformat(timespec="seconds")
    assert _cdc(api, naive).status_code == 200
    assert fault_code(_cdc(api, too_old, "TaxCode")) == "500"
    assert fault_code(_cdc(api, too_old, "Nonsense")) == "500"
    assert fault_code(_cdc(api, "yesterday")) == "2170"
    assert _cdc(api, too_old, "Customer,Estimate").status_code == 200


def test_cdc_caps_at_1000_objects_oldest_first(api: Api, sandbox: Any) -> None:
    since = sandbox.clock.now().isoformat()
    api.client.patch(f"/_sandbox/companies/{api.realm}", json={"limits": {"enabled": False}})
    company = sandbox.companies.get(api.realm)
    company.name_conflicts = False
    for i in range(1005):
        api.customer(f"Cust {i:04d}")
    got = _cdc(api, since, "Customer").get_json()["CDCResponse"][0]["QueryResponse"]
    names = [c["DisplayName"] for c in got[0]["Customer"]]
    assert len(names) == 1000
    assert names[0] == "Cust 0000" and names[-1] == "Cust 0999"


def test_batch_per_item_faults_and_limits(api: Api) -> None:
    customer = api.customer("Batcher")
    body = {"BatchItemRequest": [
        {"bId": "1", "operation": "create", "Customer": {"DisplayName": "New One"}},
        {"bId": "2", "operation": "create", "Customer": {"DisplayName": "Batcher"}},
        {"bId": "3", "operation": "update",
         "Customer": {"Id": customer["Id"], "SyncToken": "7", "sparse": True}},
        {"bId": "4", "Query": "select * from Customer where DisplayName = 'Batcher'"},
        {"bId": "5", "Query": "select * from Customer where A = 1 or B = 2"},
        {"bId": "6", "operation": "delete", "Invoice": {"Id": "42", "SyncToken": "0"}},
        {"bId": "7", "operation": "merge", "Customer": {"Id": "1"}},
    ]}
    resp = api.post("batch", body)
    assert resp.status_code == 200
    items = {i["bId"]: i for i in resp.get_json()["BatchItemResponse"]}
    assert items["1"]["Customer"]["DisplayName"] == "New One"
    codes = {bid: items[bid]["Fault"]["Error"][0]["code"] for bid in ("2", "3", "5", "6", "7")}
    assert codes == {"2": "6240", "3": "5010", "5": "4000", "6": "610", "7": "2170"}
    assert items["4"]["QueryResponse"]["Customer"][0]["Id"] == customer["Id"]

    too_many = {"BatchItemRequest": [{"bId": str(i), "Query": "select * from Item"}
                                     for i in range(31)]}
    big = api.post("batch", too_many)
    assert big.status_code == 400 and "Fault" in big.get_json()
    dup = api.post("batch", {"BatchItemRequest": [{"bId": "a", "Query": "select * from Item"},
                                                  {"bId": "a", "Query": "select * from Item"}]})
    assert dup.status_code == 400
    thirty = {"BatchItemRequest": too_many["BatchItemRequest"][:30]}
    assert len(api.post("batch", thirty).get_json()["BatchItemResponse"]) == 30


def test_batch_requestid_replay(api: Api) -> None:
    body = {"BatchItemRequest": [{"bId": "b1", "operation": "create",
                                  "Vendor": {"DisplayName": "Replayed"}}]}
    first = api.post("batch", body, requestid="batch-1")
    second = api.post("batch", body, requestid="batch-1")
    assert first.data == second.data
    assert "Vendor" in first.get_json()["BatchItemResponse"][0]
    assert api.query("select count(*) from Vendor").get_json()["QueryResponse"]["totalCount"] == 1
