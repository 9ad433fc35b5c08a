"""The Xero peers: what an integrator writes with xero-python or pyxero, unchanged, pointed at the sandbox.

    xero_peers.py LIBRARY ACTION URL TENANT TOKEN_JSON COUNT
    LIBRARY = xero-python | pyxero; ACTION = push | import

push: ceil(COUNT/10) new contacts, then COUNT AUTHORISED ACCREC invoices (ten per contact), in arrays of
50 (Xero's advice), one request after another, summarizeErrors=false. import: every contact, then every
invoice, in pages of 1,000 (`pageSize`) until a short page. Neither library waits out a 429: the first
error ends the run, and the harness reports it. Prints one JSON line: wall_s and records.
"""

import json
import sys
import time
import uuid
from datetime import date

ARRAY = 50
PAGE = 1000


def contact_rows(count, tag):
    return [{"Name": f"Peer {tag} {n:06d}", "EmailAddress": f"peer-{tag}-{n:06d}@bench.example.com"}
            for n in range((count + 9) // 10)]


def invoice_row(contact_id, tag, n):
    today = date.today()  # pyxero writes dates with strftime
    return {"Type": "ACCREC", "Contact": {"ContactID": contact_id}, "InvoiceNumber": f"PEER-{tag}-{n:06d}",
            "Status": "AUTHORISED", "Date": today, "DueDate": today, "LineAmountTypes": "NoTax",
            "LineItems": [{"Description": "Consulting", "Quantity": 1 + n % 3, "UnitAmount": 120.0,
                           "AccountCode": "200", "TaxType": "NONE"}]}


def chunks(rows):
    for start in range(0, len(rows), ARRAY):
        yield rows[start:start + ARRAY]


class XeroPython:
    def __init__(self, url, tenant, token):
        from xero_python.accounting import AccountingApi
        from xero_python.api_client import ApiClient, Configuration
        from xero_python.api_client.oauth2 import OAuth2Token

        store = {"token": dict(token, scope=token["scope"].split())}
        client = ApiClient(Configuration(oauth2_token=OAuth2Token(client_id="peer", client_secret="peer")),
                           pool_threads=1)
        client.oauth2_token_getter(lambda: store["token"])
        client.oauth2_token_saver(lambda t: store.update(token=t))
        self.api = AccountingApi(client, base_url=f"{url}/api.xro/2.0")
        self.tenant = tenant

    def push(self, count, tag):
        from xero_python.accounting import (
            Contact,
            Contacts,
            Invoice,
            Invoices,
            LineAmountTypes,
            LineItem,
        )

        ids = []
        for part in chunks(contact_rows(count, tag)):
            made = self.api.create_contacts(self.tenant, Contacts(contacts=[
                Contact(name=c["Name"], email_address=c["EmailAddress"]) for c in part]),
                summarize_errors=False, idempotency_key=str(uuid.uuid4()))
            ids += [c.contact_id for c in made.contacts]
        rows = [invoice_row(ids[n // 10], tag, n) for n in range(count)]
        for part in chunks(rows):
            self.api.create_invoices(self.tenant, Invoices(invoices=[Invoice(
                type="ACCREC", contact=Contact(contact_id=r["Contact"]["ContactID"]),
                invoice_number=r["InvoiceNumber"], status="AUTHORISED", date=date.today(), due_date=date.today(),
                line_amount_types=LineAmountTypes.NOTAX, line_items=[LineItem(
                    description="Consulting", quantity=r["LineItems"][0]["Quantity"], unit_amount=120.0,
                    account_code="200", tax_type="NONE")]) for r in part]),
                summarize_errors=False, idempotency_key=str(uuid.uuid4()))
        return len(ids) + count

    def read_all(self):
        total = 0
        for getter, field in ((self.api.get_contacts, "contacts"), (self.api.get_invoices, "invoices")):
            page = 1
            while True:
                rows = getattr(getter(self.tenant, page=page, page_size=PAGE), field)
                total += len(rows)
                if len(rows) < PAGE:
                    break
                page += 1
        return total


class PyXero:
    def __init__(self, url, tenant, token):
        from xero import Xero
        from xero.auth import OAuth2Credentials

        token = dict(token, expires_at=4102444800)  # requests-oauthlib checks expiry on the client clock
        cred = OAuth2Credentials("peer", "peer", token=token, scope=token["scope"].split())
        cred.base_url = url
        cred.tenant_id = tenant
        self.xero = Xero(cred)

    def push(self, count, tag):
        ids = []
        for part in chunks(contact_rows(count, tag)):
            ids += [c["ContactID"] for c in self.xero.contacts.put(part)]
        rows = [invoice_row(ids[n // 10], tag, n) for n in range(count)]
        for part in chunks(rows):
            self.xero.invoices.put(part)
        return len(ids) + count

    def read_all(self):
        total = 0
        for manager in (self.xero.contacts, self.xero.invoices):
            page = 1
            while True:
                rows = manager.filter(page=page, pageSize=PAGE)
                total += len(rows)
                if len(rows) < PAGE:
                    break
                page += 1
        return total


def main():
    library, action, url, tenant, token, count = sys.argv[1:7]
    peer = (XeroPython if library == "xero-python" else PyXero)(url, tenant, json.loads(token))
    started = time.perf_counter()
    records = peer.push(int(count), library[:2]) if action == "push" else peer.read_all()
    print(json.dumps({"wall_s": round(time.perf_counter() - started, 3), "records": records}))


if __name__ == "__main__":
    main()
