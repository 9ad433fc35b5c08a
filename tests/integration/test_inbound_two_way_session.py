"""A randomized two-way session: contacts, invoices and payments created and edited on both sides,
webhooks and polls interleaved. CRM → QBO writes are made the way the outbound side records them
(QBO write + link + write-ledger row). At the end: no duplicate customer or invoice in QBO, no
duplicate contact in the CRM, both sides agree, and nothing was written back to where it came from."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import date
from decimal import Decimal

from crm_qbo_plugin import Contact, Invoice, InvoiceStatus, LineItem, Origin
from crm_qbo_plugin.inbound.cdc import poll
from tests.support.inbound import TENANT, inbound_env, our_write


def _line(amount: Decimal) -> dict:
    return {"DetailType": "SalesItemLineDetail", "Amount": amount,
            "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "Qty": Decimal("1"), "UnitPrice": amount}}


def test_randomized_two_way_session_converges_without_duplicates_or_echoes(plugin_config, sandbox_url):
    rng = random.Random(20260106)
    with inbound_env(plugin_config, sandbox_url, import_invoices=True) as env:
        crm_contacts: list[str] = []  # CRM ids of contacts born in the CRM
        qbo_edited: set[str] = set()  # QBO customer ids a QBO user changed
        open_invoices: list[tuple[str, str]] = []  # (QBO customer id, QBO invoice id)
        serial = iter(range(1, 10_000))

        def customer_id_of(crm_id: str) -> str:
            return next(r["qbo_id"] for r in env.links("contact") if r["crm_id"] == crm_id)

        def crm_creates_contact() -> None:
            n = next(serial)
            crm_id = f"crm-{n}"
            env.host.contacts[(TENANT, crm_id)] = Contact(id=crm_id, email=f"crm{n}@example.com", first_name="Crm", last_name=str(n))
            our_write(env, "contact", crm_id, "Customer", lambda qbo: qbo.create("Customer", {
                "DisplayName": f"Crm {n}", "GivenName": "Crm", "FamilyName": str(n),
                "PrimaryEmailAddr": {"Address": f"crm{n}@example.com"}}))
            crm_contacts.append(crm_id)

        def crm_edits_contact() -> None:
            if not crm_contacts:
                return
            crm_id = rng.choice(crm_contacts)
            phone = f"555-{next(serial):04d}"
            env.host.contacts[(TENANT, crm_id)] = replace(env.host.contacts[(TENANT, crm_id)], phone=phone)
            qbo_id = customer_id_of(crm_id)

            def write(qbo):
                current = qbo.read("Customer", qbo_id)
                return qbo.update("Customer", {"Id": qbo_id, "SyncToken": current["SyncToken"], "PrimaryPhone": {"FreeFormNumber": phone}})
            our_write(env, "contact", crm_id, "Customer", write)

        def qbo_creates_customer() -> None:
            n = next(serial)
            with env.qbo() as qbo:
                qbo.create("Customer", {"DisplayName": f"Qbo {n}", "GivenName": "Qbo", "FamilyName": str(n),
                                        "PrimaryEmailAddr": {"Address": f"qbo{n}@example.com"}})

        def qbo_edits_customer() -> None:
            with env.qbo() as qbo:
                customers = qbo.query_all("Customer")
                target = rng.choice(customers)
                qbo.update("Customer", {"Id": target["Id"], "SyncToken": target["SyncToken"],
                                        "PrimaryPhone": {"FreeFormNumber": f"777-{next(serial):04d}"}})
            qbo_edited.add(target["Id"])

        def crm_pushes_invoice() -> None:
            if not crm_contacts:
                return
            crm_contact = rng.choice(crm_contacts)
            invoice_id, total = f"inv-{next(serial)}", Decimal(rng.randint(20, 300))
            env.host.invoices[(TENANT, invoice_id)] = Invoice(
                id=invoice_id, contact_id=crm_contact, number=None, status=InvoiceStatus.SENT, currency="USD",
                issue_date=date(2026, 1, 5), due_date=None, total=total, lines=(LineItem("Work", Decimal("1"), total),))
            customer = customer_id_of(crm_contact)
            answer = our_write(env, "invoice", invoice_id, "Invoice", lambda qbo: qbo.create(
                "Invoice", {"CustomerRef": {"value": customer}, "Line": [_line(total)]}))
            open_invoices.append((customer, answer["Id"]))

        def qbo_creates_invoice() -> None:
            with env.qbo() as qbo:
                customer = rng.choice(qbo.query_all("Customer"))
                answer = qbo.create("Invoice", {"CustomerRef": {"value": customer["Id"]}, "Line": [_line(Decimal(rng.randint(5, 90)))]})
            open_invoices.append((customer["Id"], answer["Id"]))

        def qbo_takes_payment() -> None:
            if not open_invoices:
                return
            customer, invoice_id = rng.choice(open_invoices)
            with env.qbo() as qbo:
                balance = Decimal(str(qbo.read("Invoice", invoice_id)["Balance"]))
                if balance <= 0:
                    return
                amount = balance if rng.random() < 0.5 else (balance / 2).quantize(Decimal("0.01"))
                qbo.create("Payment", {"CustomerRef": {"value": customer}, "TotalAmt": amount,
                                       "Line": [{"Amount": amount, "LinkedTxn": [{"TxnId": invoice_id, "TxnType": "Invoice"}]}]})

        def sync() -> None:
            env.sync()

        def cdc() -> None:
            with env.app.app_context():
                poll(env.state, TENANT)

        actions = [crm_creates_contact, crm_edits_contact, qbo_creates_customer, qbo_edits_customer,
                   crm_pushes_invoice, qbo_creates_invoice, qbo_takes_payment, sync, cdc]
        crm_creates_contact()
        for _ in range(60):
            rng.choice(actions)()
        env.sync()
        cdc()
        env.deliver(force=True)
        env.work()

        with env.qbo() as qbo:
            customers = qbo.query_all("Customer")
            invoices = qbo.query_all("Invoice")
        contact_links, invoice_links = env.links("contact"), env.links("invoice")
        # QBO: no duplicate customer or invoice; each is linked exactly once.
        assert len({c["DisplayName"] for c in customers}) == len(customers)
        assert sorted(r["qbo_id"] for r in contact_links) == sorted(c["Id"] for c in customers)
        assert sorted(r["qbo_id"] for r in invoice_links) == sorted(i["Id"] for i in invoices)
        # CRM: no duplicate contact; every contact and invoice is linked once.
        emails = [c.email for (tenant, _), c in env.host.contacts.items() if tenant == TENANT]
        assert len(emails) == len(set(emails)) == len(customers)
        assert len(env.host.invoices) == len(invoices)
        # Both sides agree on what the CRM takes from QBO.
        by_qbo = {c["Id"]: c for c in customers}
        for row in contact_links:
            assert env.host.contacts[(TENANT, row["crm_id"])].phone == by_qbo[row["qbo_id"]].get("PrimaryPhone", {}).get("FreeFormNumber", "")
        for row in invoice_links:
            qbo_invoice = next(i for i in invoices if i["Id"] == row["qbo_id"])
            crm_invoice = env.host.invoices[(TENANT, row["crm_id"])]
            assert crm_invoice.amount_paid == Decimal(str(qbo_invoice["TotalAmt"])) - Decimal(str(qbo_invoice["Balance"]))
        # Nothing went back to where it came from: CRM-born contacts were only rewritten after a
        # QBO user changed them, CRM-born invoices only took payment states, and every QBO-born
        # record is linked with origin qbo.
        crm_born = {r["crm_id"]: r["qbo_id"] for r in contact_links if r["origin"] == "crm"}
        for kind, crm_id, origin in env.host.writes:
            assert origin is Origin.QBO
            if kind == "contact" and crm_id in crm_born:
                assert crm_born[crm_id] in qbo_edited
            if crm_id.startswith("inv-"):
                assert kind == "invoice_status"
        assert {r["origin"] for r in contact_links if not r["crm_id"].startswith("crm-")} <= {"qbo"}
        assert len(crm_contacts) >= 1 and len(env.host.writes) > 0
