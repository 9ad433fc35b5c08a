"""REST semantics: envelopes, SyncToken, names, numbering, periods, references, tax, payments."""

from __future__ import annotations

import threading
from typing import Any

from tests.sandbox.conftest import Api, fault_code


def test_envelope_headers_and_minorversion(api: Api) -> None:
    resp = api.post("customer", {"DisplayName": "Env"}, minorversion="3")
    assert resp.status_code == 200
    body = resp.get_json()
    assert set(body) == {"Customer", "time"}
    assert body["time"][-6:] in ("-08:00", "-07:00")
    customer = body["Customer"]
    assert (customer["domain"], customer["sparse"], customer["SyncToken"]) == ("QBO", False, "0")
    assert customer["MetaData"]["CreateTime"] == customer["MetaData"]["LastUpdatedTime"]
    assert resp.headers["intuit_tid"]
    assert api.get("customer/1").get_json()["Customer"] == customer


def test_sync_token_int_accepted_and_stale_is_5010(api: Api) -> None:
    created = api.customer("Tok")
    ok = api.post("customer", {"Id": created["Id"], "SyncToken": 0, "sparse": True, "Notes": "n"})
    assert ok.status_code == 200 and ok.get_json()["Customer"]["SyncToken"] == "1"
    stale = api.post("customer", {"Id": created["Id"], "SyncToken": "0", "sparse": True,
                                  "Notes": "x"})
    assert stale.status_code == 400
    assert fault_code(stale) == "5010"
    assert stale.get_json()["Fault"]["Error"][0]["Message"] == "Stale Object Error"
    assert api.read("Customer", created["Id"])["Notes"] == "n"


def test_full_update_clears_omitted_fields(api: Api) -> None:
    created = api.customer("Full", Notes="keep?", CompanyName="Co")
    resp = api.post("customer", {"Id": created["Id"], "SyncToken": "0", "DisplayName": "Full"})
    updated = resp.get_json()["Customer"]
    assert "Notes" not in updated and "CompanyName" not in updated
    assert updated["SyncToken"] == "1"


def test_display_name_is_one_namespace_across_customer_vendor_employee(api: Api) -> None:
    api.customer("Shared Name")
    for entity in ("vendor", "employee", "customer"):
        resp = api.post(entity, {"DisplayName": "shared NAME"})
        assert resp.status_code == 400, entity
        assert fault_code(resp) == "6240"
    api.create("Employee", {"GivenName": "Eve", "FamilyName": "Adams"})
    dup = api.post("vendor", {"DisplayName": "Eve Adams"})
    assert fault_code(dup) == "6240"


def test_inactive_customer_is_renamed_and_frees_its_name(api: Api) -> None:
    created = api.customer("Gone Soon")
    resp = api.post("customer", {"Id": created["Id"], "SyncToken": "0", "sparse": True,
                                 "Active": False})
    gone = resp.get_json()["Customer"]
    assert gone["Active"] is False
    assert gone["DisplayName"] == "Gone Soon (deleted)"
    assert gone["FullyQualifiedName"] == "Gone Soon (deleted)"
    assert api.customer("Gone Soon")["Id"] != created["Id"]
    # inactive names are hidden from queries unless asked for
    listed = api.query("select * from Customer").get_json()["QueryResponse"]["Customer"]
    assert [c["DisplayName"] for c in listed] == ["Gone Soon"]
    inactive = api.query("select * from Customer where Active = false").get_json()
    assert [c["Id"] for c in inactive["QueryResponse"]["Customer"]] == [created["Id"]]
    # referencing an inactive customer is an invalid reference
    ref = api.post("invoice", {"CustomerRef": {"value": created["Id"]},
                               "Line": [{"DetailType": "SalesItemLineDetail", "Amount": 1}]})
    assert fault_code(ref) == "2500"
    # name lists cannot be deleted
    delete = api.post("customer", {"Id": created["Id"], "SyncToken": "1"}, operation="delete")
    assert delete.status_code == 400 and fault_code(delete) == "500"


def test_validation_errors(api: Api) -> None:
    cases: list[tuple[str, dict[str, Any], str, str]] = [
        ("customer", {"DisplayName": "x" * 501}, "2050", "DisplayName"),
        ("customer", {"GivenName": "y" * 101}, "2050", "GivenName"),
        ("customer", {}, "2020", "DisplayName"),
        ("customer", {"DisplayName": "Mail", "PrimaryEmailAddr": {"Address": "nope"}}, "2210",
         "PrimaryEmailAddr.Address"),
        ("invoice", {"Line": [{"DetailType": "SalesItemLineDetail", "Amount": 1}]}, "2020",
         "CustomerRef"),
        ("item", {"Name": "Svc", "Type": "Service"}, "2020", "IncomeAccountRef"),
        ("item", {"Name": "Svc", "Type": "Gadget"}, "2170", "Type"),
        ("item", {"Name": "Svc", "Type": "Service", "IncomeAccountRef": {"value": "2"},
                  "Description": "d" * 4001}, "2050", "Description"),
        ("account", {"Name": "A"}, "2020", "AccountType"),
    ]
    for entity, body, code, element in cases:
        resp = api.post(entity, body)
        assert resp.status_code == 400, (entity, body)
        error = resp.get_json()["Fault"]["Error"][0]
        assert (error["code"], error["element"]) == (code, element), (entity, body)
    customer = api.customer("Lines")
    no_lines = api.post("invoice", {"CustomerRef": {"value": customer["Id"]}, "Line": []})
    assert fault_code(no_lines) == "2020"
    bad_item = api.post("invoice", {"CustomerRef": {"value": customer["Id"]}, "Line": [
        {"DetailType": "SalesItemLineDetail", "Amount": 1,
         "SalesItemLineDetail": {"ItemRef": {"value": "99"}}}]})
    assert fault_code(bad_item) == "2500"
    long_doc = api.post("invoice", {"CustomerRef": {"value": customer["Id"]}, "DocNumber": "9" * 22,
                                    "Line": [{"DetailType": "SalesItemLineDetail", "Amount": 1}]})
    assert fault_code(long_doc) == "2050"
    assert api.query("select count(*) from Invoice").get_json()["QueryResponse"] == {"totalCount": 0}


def test_item_and_account_names_are_unique(api: Api) -> None:
    dup_item = api.post("item", {"Name": "services", "Type": "Service",
                                 "IncomeAccountRef": {"value": "2"}})
    assert fault_code(dup_item) == "6240"
    dup_account = api.post("account", {"Name": "Checking", "AccountType": "Bank"})
    assert fault_code(dup_account) == "6240"


def test_doc_numbers(make_company: Any) -> None:
    auto = make_company()
    customer = auto.customer("Num")["Id"]
    assert [auto.invoice(customer, 1)["DocNumber"] for _ in range(2)] == ["1001", "1002"]
    custom = make_company(custom_txn_numbers=True)
    cid = custom.customer("Num")["Id"]
    assert "DocNumber" not in custom.invoice(cid, 1)
    assert custom.invoice(cid, 1, DocNumber="INV-1")["DocNumber"] == "INV-1"
    dup = custom.post("invoice", {"CustomerRef": {"value": cid}, "DocNumber": "INV-1",
                                  "Line": [{"DetailType": "SalesItemLineDetail", "Amount": 1}]})
    assert dup.status_code == 400 and fault_code(dup) == "6140"
    allowed = custom.post("invoice", {"CustomerRef": {"value": cid}, "DocNumber": "INV-1",
                                      "Line": [{"DetailType": "SalesItemLineDetail", "Amount": 1}]},
                          include="allowduplicatedocnum")
    assert allowed.status_code == 200


def test_closed_books_reject_writes_on_or_before_the_date(api: Api) -> None:
    customer = api.customer("Closed")["Id"]
    early = api.invoice(customer, 10, TxnDate="2020-01-15")
    patch = api.client.patch(f"/_sandbox/companies/{api.realm}",
                             json={"books_closed_date": "2020-01-31"})
    assert patch.status_code == 200 and patch.get_json()["books_closed_date"] == "2020-01-31"
    for body, op in (({"CustomerRef": {"value": customer}, "TxnDate": "2020-01-31",
                       "Line": [{"DetailType": "SalesItemLineDetail", "Amount": 1}]}, ""),
                     ({"Id": early["Id"], "SyncToken": "0", "sparse": True,
                       "TxnDate": "2020-02-05"}, ""),
                     ({"Id": early["Id"], "SyncToken": "0"}, "delete"),
                     ({"Id": early["Id"], "SyncToken": "0"}, "void")):
        resp = api.post("invoice", body, operation=op) if op else api.post("invoice", body)
        assert resp.status_code == 400, body
        assert fault_code(resp) == "6210"
    assert api.invoice(customer, 1, TxnDate="2020-02-01")["TxnDate"] == "2020-02-01"


def test_void_and_delete_semantics(api: Api) -> None:
    customer = api.customer("Voider")["Id"]
    invoice = api.invoice(customer, 40, 60, PrivateNote="keep")
    assert api.read("Customer", customer)["Balance"] == 100
    resp = api.post("invoice", {"Id": invoice["Id"], "SyncToken": "0"}, operation="void")
    voided = resp.get_json()["Invoice"]
    assert voided["PrivateNote"] == "Voided - keep"
    assert [line["Amount"] for line in voided["Line"]] == [0, 0, 0]
    assert (voided["TotalAmt"], voided["Balance"], voided["SyncToken"]) == (0, 0, "1")
    assert api.read("Invoice", invoice["Id"])["TotalAmt"] == 0
    assert api.read("Customer", customer)["Balance"] == 0
    deleted = api.post("invoice", {"Id": invoice["Id"], "SyncToken": "1"}, operation="delete")
    assert deleted.get_json()["Invoice"] == {"status": "Deleted", "domain": "QBO",
                                             "Id": invoice["Id"]}
    assert fault_code(api.get(f"invoice/{invoice['Id']}")) == "610"
    again = api.post("invoice", {"Id": invoice["Id"], "SyncToken": "1"}, operation="delete")
    assert fault_code(again) == "610"


def test_payments_reduce_and_restore_invoice_balance(api: Api) -> None:
    customer = api.customer("Payer")["Id"]
    first = api.invoice(customer, 100)
    second = api.invoice(customer, 50)
    payment = api.create("Payment", {"CustomerRef": {"value": customer}, "TotalAmt": 130, "Line": [
        {"Amount": 100, "LinkedTxn": [{"TxnId": first["Id"], "TxnType": "Invoice"}]},
        {"Amount": 20, "LinkedTxn": [{"TxnId": second["Id"], "TxnType": "Invoice"}]}]})
    assert payment["UnappliedAmt"] == 10
    one = api.read("Invoice", first["Id"])
    assert one["Balance"] == 0 and one["SyncToken"] == "1"
    assert one["LinkedTxn"] == [{"TxnId": payment["Id"], "TxnType": "Payment"}]
    assert api.read("Invoice", second["Id"])["Balance"] == 30
    assert api.read("Customer", customer)["Balance"] == 20  # 30 open - 10 unapplied
    blocked = api.post("invoice", {"Id": first["Id"], "SyncToken": "1"}, operation="delete")
    assert fault_code(blocked) == "6000"
    too_much = api.post("payment", {"CustomerRef": {"value": customer}, "TotalAmt": 40, "Line": [
        {"Amount": 40, "LinkedTxn": [{"TxnId": second["Id"], "TxnType": "Invoice"}]}]})
    assert fault_code(too_much) == "6000"
    # re-applying the same payment differently (sparse update replaces its lines)
    moved = api.create("Payment", {"Id": payment["Id"], "SyncToken": "0", "sparse": True,
                                   "Line": [{"Amount": 50, "LinkedTxn": [
                                       {"TxnId": second["Id"], "TxnType": "Invoice"}]}]})
    assert moved["UnappliedAmt"] == 80
    assert api.read("Invoice", first["Id"])["Balance"] == 100
    assert api.read("Invoice", first["Id"])["LinkedTxn"] == []
    assert api.read("Invoice", second["Id"])["Balance"] == 0
    gone = api.post("payment", {"Id": payment["Id"], "SyncToken": "1"}, operation="delete")
    assert gone.status_code == 200
    assert api.read("Invoice", second["Id"])["Balance"] == 50
    assert api.read("Customer", customer)["Balance"] == 150


def test_us_tax_group_applies_to_tax_lines_only(make_company: Any) -> None:
    api = make_company(tax_rates=[{"name": "State", "rate": 6}, {"name": "City", "rate": 2.5}])
    customer = api.customer("Taxed")["Id"]
    invoice = api.create("Invoice", {
        "CustomerRef": {"value": customer},
        "TxnTaxDetail": {"TxnTaxCodeRef": {"value": "2"}},
        "Line": [
            {"DetailType": "SalesItemLineDetail", "Amount": 100,
             "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "TaxCodeRef": {"value": "TAX"}}},
            {"DetailType": "SalesItemLineDetail", "Amount": 33.33,
             "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "TaxCodeRef": {"value": "NON"}}},
            {"DetailType": "DiscountLineDetail", "Amount": 0,
             "DiscountLineDetail": {"PercentBased": True, "DiscountPercent": 10}},
        ]})
    tax = invoice["TxnTaxDetail"]
    assert [t["Amount"] for t in tax["TaxLine"]] == [6.0, 2.5]
    assert tax["TotalTax"] == 8.5
    assert invoice["Line"][2] == {"DetailType": "SubTotalLineDetail", "Amount": 133.33,
                                  "SubTotalLineDetail": {}}
    assert invoice["Line"][3]["Amount"] == 13.33  # 10% of the subtotal
    assert invoice["TotalAmt"] == 128.50  # 133.33 - 13.33 + 8.50
    plain = api.invoice(customer, 10)
    assert plain["TxnTaxDetail"] == {"TotalTax": 0}
    assert plain["Line"][0]["SalesItemLineDetail"]["TaxCodeRef"] == {"value": "NON"}


def test_gb_vat_exclusive_and_inclusive(make_company: Any) -> None:
    api = make_company(country="GB")
    codes = {c["Name"]: c["Id"] for c in
             api.query("select * from TaxCode").get_json()["QueryResponse"]["TaxCode"]}
    assert set(codes) == {"20.0% S", "5.0% R", "0.0% Z", "Exempt"}
    customer = api.customer("Brit")
    assert customer["CurrencyRef"] == {"name": "British Pound Sterling", "value": "GBP"}

    def lines() -> list[dict[str, Any]]:
        return [{"DetailType": "SalesItemLineDetail", "Amount": 120,
                 "SalesItemLineDetail": {"ItemRef": {"value": "1"},
                                         "TaxCodeRef": {"value": codes["20.0% S"]}}},
                {"DetailType": "SalesItemLineDetail", "Amount": 50,
                 "SalesItemLineDetail": {"ItemRef": {"value": "1"},
                                         "TaxCodeRef": {"value": codes["0.0% Z"]}}}]

    excl = api.create("Invoice", {"CustomerRef": {"value": customer["Id"]}, "Line": lines(),
                                  "GlobalTaxCalculation": "TaxExcluded"})
    assert excl["TxnTaxDetail"]["TotalTax"] == 24
    assert excl["TotalAmt"] == 194
    incl = api.create("Invoice", {"CustomerRef": {"value": customer["Id"]}, "Line": lines(),
                                  "GlobalTaxCalculation": "TaxInclusive"})
    assert incl["TxnTaxDetail"]["TotalTax"] == 20
    assert incl["TxnTaxDetail"]["TaxLine"][0]["TaxLineDetail"]["NetAmountTaxable"] == 100
    assert incl["TotalAmt"] == 170
    bad = api.post("invoice", {"CustomerRef": {"value": customer["Id"]}, "Line": [
        {"DetailType": "SalesItemLineDetail", "Amount": 1,
         "SalesItemLineDetail": {"TaxCodeRef": {"value": "TAX"}}}]})
    assert fault_code(bad) == "2500"


def test_concurrent_name_writes_fail_with_6000(make_company: Any) -> None:
    api = make_company(name_write_ms=300)
    results: list[Any] = []

    def create(name: str) -> None:
        client = api.client.application.test_client()
        results.append(client.post(api.url("customer"), headers=api.headers,
                                   json={"DisplayName": name}))

    threads = [threading.Thread(target=create, args=(f"C{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted(r.status_code for r in results)
    assert statuses == [200, 400]
    failed = next(r for r in results if r.status_code == 400).get_json()["Fault"]["Error"][0]
    assert failed == {
        "Message": "A business validation error has occurred while processing your request",
        "Detail": "Business Validation Error: You can only add or edit one name at a time. "
                  "Please try again.",
        "code": "6000", "element": ""}
    # invoices are not name-list writes; switching the simulation off lets names overlap
    api.client.patch(f"/_sandbox/companies/{api.realm}", json={"name_conflicts": False})
    results.clear()
    threads = [threading.Thread(target=create, args=(f"D{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.status_code for r in results) == [200, 200]


def test_requestid_replays_the_original_answer(api: Api) -> None:
    first = api.post("customer", {"DisplayName": "Once"}, requestid="req-1")
    second = api.post("customer", {"DisplayName": "Once"}, requestid="req-1")
    assert (first.status_code, second.status_code) == (200, 200)
    assert second.data == first.data
    assert api.query("select count(*) from Customer").get_json()["QueryResponse"] == {
        "totalCount": 1}
    too_long = api.post("customer", {"DisplayName": "Long"}, requestid="x" * 51)
    assert too_long.status_code == 400 and fault_code(too_long) == "2050"
    failed = api.post("customer", {"DisplayName": "Once"}, requestid="req-2")
    assert fault_code(failed) == "6240"


def test_unknown_paths_and_methods(api: Api) -> None:
    unknown = api.get("widget/1")
    assert unknown.status_code == 400 and fault_code(unknown) == "500"
    assert "Could not find resource" in unknown.get_json()["Fault"]["Error"][0]["Detail"]
    wrong = api.get("customer")
    assert fault_code(wrong) == "500"
    taxcode = api.post("taxcode", {"Name": "X"})
    assert fault_code(taxcode) == "500"
    assert api.get("taxcode/TAX").get_json()["TaxCode"]["Taxable"] is True
    assert api.get("taxrate/1").get_json()["TaxRate"]["RateValue"] == 8


def test_preferences_update_toggles_custom_numbers(api: Api) -> None:
    prefs = api.get("preferences").get_json()["Preferences"]
    resp = api.post("preferences", {"SyncToken": prefs["SyncToken"], "sparse": True,
                                    "SalesFormsPrefs": {"CustomTxnNumbers": True}})
    assert resp.status_code == 200
    assert resp.get_json()["Preferences"]["SalesFormsPrefs"]["CustomTxnNumbers"] is True
    customer = api.customer("Prefs")["Id"]
    assert "DocNumber" not in api.invoice(customer, 1)
    stale = api.post("preferences", {"SyncToken": prefs["SyncToken"], "sparse": True})
    assert fault_code(stale) == "5010"


def test_an_invoice_update_keeps_its_payment_links(api: Api) -> None:
    """QBO's Payment links are read-only and survive any invoice update, sparse or full; a client
    that sends none (or invented ones) changes nothing about them."""
    customer = api.customer("Linked")["Id"]
    invoice = api.invoice(customer, 100)
    payment = api.create("Payment", {"CustomerRef": {"value": customer}, "TotalAmt": 100, "Line": [
        {"Amount": 100, "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}]})
    paid = [{"TxnId": payment["Id"], "TxnType": "Payment"}]
    sparse = api.create("Invoice", {"Id": invoice["Id"], "SyncToken": "1", "sparse": True, "PrivateNote": "n"})
    assert (sparse["LinkedTxn"], sparse["Balance"], sparse["SyncToken"]) == (paid, 0, "2")
    full = api.create("Invoice", {"Id": invoice["Id"], "SyncToken": "2", "CustomerRef": {"value": customer},
                                  "Line": invoice["Line"][:1], "LinkedTxn": []})
    assert (full["LinkedTxn"], full["Balance"]) == (paid, 0)
    invented = api.create("Invoice", {"Id": invoice["Id"], "SyncToken": "3", "sparse": True,
                                      "LinkedTxn": [{"TxnId": "999", "TxnType": "Payment"}]})
    assert invented["LinkedTxn"] == paid
    assert api.read("Invoice", invoice["Id"])["LinkedTxn"] == paid
