"""The card's records API names records as the CRM's users know them (issue #17, readable records):
titles, contacts, amounts and both pages from the reference CRM's optional host methods; search
by number, name and e-mail; paging with the true total; only the actions that make sense; the
history in plain language for both directions; the health figures. On the reference CRM with the
sandbox's real OAuth flow and a real worker."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
import requests

from crm_qbo_plugin.host import RecordLabel, describe_records, search_records
from tests.integration.test_held_and_local_changes import P, World
from tests.support.reference_crm_app import close

QBO_APP = "https://app.sandbox.qbo.intuit.com/app"


@pytest.fixture
def books(plugin_config, sandbox_url):
    w = World(plugin_config, sandbox_url)
    w.connect()
    ada = w.crm("POST", "/contacts", {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com"})
    grace = w.crm("POST", "/contacts", {"first_name": "Grace", "last_name": "Hopper", "email": "grace@navy.example"})
    first = w.sent_invoice(ada["id"], price="17.50")
    second = w.sent_invoice(grace["id"], price="10.00")
    w.work()
    yield w, ada, grace, first, second
    close(w.app)


def records(w: World, query: str) -> tuple[list[dict], int]:
    answer = w.client.get(P + "/api/records" + query)
    assert answer.status_code == 200, answer.json
    return answer.json, int(answer.headers["X-Total-Count"])


def test_records_are_named_linked_both_ways_and_offer_no_action_when_synced(books):
    w, ada, _grace, first, _second = books
    rows, total = records(w, "?status=synced&kind=invoice")
    assert total == 2
    row = next(r for r in rows if r["crm_id"] == first["id"])
    assert row["label"] == {"title": f"Invoice {first['number']}", "subtitle": "Ada Lovelace", "amount": "35.00 USD",
                            "url": f"/invoices/{first['id']}"}
    doc_number = w.qbo("GET", f"invoice/{row['qbo_id']}")["Invoice"]["DocNumber"]  # as QuickBooks users know it
    assert row["qbo_title"] == f"QuickBooks invoice {doc_number}"
    assert row["qbo_url"] == f"{QBO_APP}/invoice?txnId={row['qbo_id']}"
    assert row["actions"] == []
    contact = w.api("GET", f"/records/contact/{ada['id']}")
    assert (contact["label"]["title"], contact["label"]["subtitle"], contact["label"]["url"]) == (
        "Ada Lovelace", "ada@example.com", f"/contacts/{ada['id']}")
    assert contact["qbo_url"] == f"{QBO_APP}/customerdetail?nameId={contact['qbo_id']}"


def test_search_by_number_name_and_email_and_page_with_the_true_total(books):
    w, ada, grace, first, second = books
    everything, total = records(w, "?status=synced")
    assert total == 4 and len(everything) == 4
    assert [(r["kind"], r["crm_id"]) for r in records(w, "?q=" + first["number"])[0]] == [("invoice", first["id"])]
    by_name, count = records(w, "?q=hopper")
    assert count == 2 and sorted(r["crm_id"] for r in by_name) == sorted([grace["id"], second["id"]])
    by_email, count = records(w, "?q=ADA%40example&kind=invoice")
    assert count == 1 and [r["crm_id"] for r in by_email] == [first["id"]]
    qbo_id = everything[0]["qbo_id"]
    assert qbo_id in [r["qbo_id"] for r in records(w, "?q=" + qbo_id)[0]]
    assert records(w, "?q=nobody-like-this") == ([], 0)
    assert records(w, "?q=%25") == ([], 0)  # a LIKE wildcard is searched for, not obeyed
    pages = [records(w, f"?status=synced&limit=3&offset={offset}") for offset in (0, 3)]
    assert [len(rows) for rows, _ in pages] == [3, 1] and {t for _, t in pages} == {4}
    assert [r["crm_id"] for rows, _ in pages for r in rows] == [r["crm_id"] for r in everything]
    for bad in ("?q=", "?q=a%00b", "?q=" + "x" * 101, "?offset=-1", "?search=ada"):
        assert w.client.get(P + "/api/records" + bad).status_code == 400, bad


def test_history_says_what_was_sent_and_a_failure_says_what_to_do(books):
    w, ada, _grace, _first, _second = books
    status = w.api("GET", "/status")
    assert status["needs_attention"] == 0 and status["last_synced_at"] is not None
    assert w.api("GET", "/history")[0]["summary"] == "Sent 2 invoices to QuickBooks"
    closed = (date.today() + timedelta(days=30)).isoformat()
    assert requests.patch(f"{w.sandbox}/_sandbox/companies/{w.realm}", json={"books_closed_date": closed},
                          timeout=10).status_code == 200
    late = w.sent_invoice(ada["id"], price="5.00")
    w.work()
    failed, count = records(w, "?status=failed")
    assert count == 1 and failed[0]["crm_id"] == late["id"] and failed[0]["actions"] == ["retry", "ignore"]
    assert w.api("GET", "/status")["needs_attention"] == 1
    newest = w.api("GET", "/history")[0]
    assert newest["summary"].endswith("1 could not be sent")
    [failure] = newest["failures"]
    assert (failure["kind"], failure["crm_id"], failure["title"], failure["url"]) == (
        "invoice", late["id"], f"Invoice {late['number']} · Ada Lovelace", f"/invoices/{late['id']}")
    assert failure["error"].startswith("QuickBooks books are closed for ")
    assert failure["advice"] == "Once the date is in an open period (or the period is reopened in QuickBooks), press Retry."

    w.qbo("POST", "customer", {"DisplayName": "Mary Jackson", "PrimaryEmailAddr": {"Address": "mary@langley.example"}})
    w.api("POST", "/sync-now", {}, expect=202)
    w.work()
    assert w.api("GET", "/history")[0]["summary"] == (
        "Sent 2 invoices to QuickBooks · Received 1 change from QuickBooks · 1 could not be sent")


class Describing:
    """A host whose optional answers break the contract: unsafe links and wrong types."""

    def describe_records(self, tenant, kind, ids):
        return {ids[0]: RecordLabel(title="A", url="javascript:alert(1)"), ids[1]: "not a label",
                "other": RecordLabel(title="B", url="//evil.example/x")}

    def search_records(self, tenant, query, limit):
        return {"invoice": ["i-1", 7], "martian": ["x"]}


def test_host_labels_keep_only_safe_links_and_hosts_without_the_methods_fall_back():
    labels = describe_records(Describing(), "t", "invoice", ["i-1", "i-2"])  # type: ignore[arg-type]
    assert labels == {"i-1": RecordLabel(title="A", url=None)}
    assert search_records(Describing(), "t", "x") == {"contact": [], "invoice": ["i-1"], "payment": []}  # type: ignore[arg-type]
    assert describe_records(object(), "t", "invoice", ["i-1"]) == {}  # type: ignore[arg-type]
    assert search_records(object(), "t", "x") == {}  # type: ignore[arg-type]
    broken = type("Broken", (), {"describe_records": lambda self, *a: ["no"], "search_records": lambda self, *a: None})()
    assert describe_records(broken, "t", "invoice", ["i-1"]) == {} and search_records(broken, "t", "x") == {}
