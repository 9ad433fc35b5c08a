"""The demo's Xero side: register the CRM's app with the local Xero (`xero_sandbox`), and seed an
organisation whose books a second CRM location can connect to — a few contacts, items and sent
invoices; its chart of accounts and tax rates come with its country (New Zealand: NZD, 15% GST).

Everything goes through the sandbox's control and Accounting APIs, as a person using Xero would
leave it; nothing here imports the sandbox or the plugin."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import requests

XERO_CLIENT_ID = "reference-crm-demo-xero"
XERO_SEEDER_ID = "reference-crm-demo-xero-seeder"  # seeds the organisation; has no webhook URL
XERO_ORG = "Kiwi Gardens Ltd"
XERO_COUNTRY = "NZ"
XERO_CURRENCY = "NZD"  # the organisation's base currency, and the Xero location's
XERO_BANK_ACCOUNT = "090"  # the seeded "Business Bank Account" payments go to
XERO_CONTACTS = (  # Xero's Name (a person's, or a company's), its contact person, e-mail, phone
    ("Aroha Ngata", ("Aroha", "Ngata"), "aroha@example.com", "021 555 0101"),
    ("Tane Mahuta Nursery", ("Tane", "Mahuta"), "tane@example.com", "021 555 0102"),
    ("Kauri Cafe", ("Mere", "Kauri"), "kauri@example.com", "021 555 0103"),
)
XERO_ITEMS = (("HEDGE-1", "Hedge trimming", "60.00"), ("LAWN-1", "Lawn mowing", "42.50"))


class XeroSeedFailed(RuntimeError):
    """The local Xero refused a seeding call; the message says which and why."""


@dataclass(frozen=True)
class XeroDemo:
    """What the demo's Xero side is: where, which organisation, and the CRM app's keys."""

    base_url: str
    tenant_id: str
    client_secret: str
    webhook_key: str


def seed_xero(base_url: str, redirect_uri: str, webhook_url: str) -> XeroDemo:
    """Register the CRM's Xero app (consent to `redirect_uri`, webhooks to `webhook_url`), create
    the organisation and fill it through the Accounting API with a seeder app's token."""
    client_secret, webhook_key = secrets.token_urlsafe(24), secrets.token_urlsafe(32)
    _control(base_url, "apps", {"client_id": XERO_CLIENT_ID, "client_secret": client_secret,
                                "name": "Reference CRM (demo)", "redirect_uris": [redirect_uri],
                                "webhook_url": webhook_url, "webhook_key": webhook_key})
    _control(base_url, "apps", {"client_id": XERO_SEEDER_ID, "client_secret": secrets.token_urlsafe(16),
                                "redirect_uris": ["http://127.0.0.1/unused"], "name": "Demo seeder"})
    tenant = str(_control(base_url, "organisations", {"name": XERO_ORG, "country": XERO_COUNTRY})["tenant_id"])
    token = str(_control(base_url, "connect", {"client_id": XERO_SEEDER_ID, "tenant_ids": [tenant]})["access_token"])
    xero = _Xero(base_url, tenant, token)
    contacts = xero.put("Contacts", [
        {"Name": name, "EmailAddress": email, "FirstName": first, "LastName": last,
         "Phones": [{"PhoneType": "DEFAULT", "PhoneNumber": phone}]}
        for name, (first, last), email, phone in XERO_CONTACTS])
    xero.put("Items", [{"Code": code, "Name": name, "Description": name,
                        "SalesDetails": {"UnitPrice": price, "AccountCode": "200", "TaxType": "OUTPUT2"}}
                       for code, name, price in XERO_ITEMS])
    xero.put("Invoices", [
        {"Type": "ACCREC", "Status": "AUTHORISED", "LineAmountTypes": "Exclusive",
         "Contact": {"ContactID": contact["ContactID"]},
         "LineItems": [{"ItemCode": code, "Quantity": quantity} for code, quantity in lines]}
        for contact, lines in zip(contacts, ((("HEDGE-1", "2"), ("LAWN-1", "1")), (("LAWN-1", "4"),),
                                             (("HEDGE-1", "1"),)), strict=True)])
    return XeroDemo(base_url, tenant, client_secret, webhook_key)


def check_webhooks(base_url: str) -> None:
    """Run Xero's intent-to-receive check against the CRM (once it answers), so the sandbox sends
    its webhooks there; the plugin's poll would find the changes anyway, only later."""
    answer = _control(base_url, f"apps/{XERO_CLIENT_ID}/intent-to-receive", {})
    if not answer.get("passed"):
        raise XeroSeedFailed(f"the CRM failed Xero's intent-to-receive check: {answer.get('results')}")


def _control(base_url: str, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = requests.post(f"{base_url}/_sandbox/{endpoint}", json=body, timeout=10)
    if answer.status_code not in (200, 201):
        raise XeroSeedFailed(f"the Xero sandbox refused /_sandbox/{endpoint} (HTTP {answer.status_code} "
                             f"{answer.text[:300]})")
    data: dict[str, Any] = answer.json()
    return data


@dataclass
class _Xero:
    base_url: str
    tenant: str
    token: str

    def put(self, collection: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        answer = requests.put(f"{self.base_url}/api.xro/2.0/{collection}", json={collection: rows}, timeout=10,
                              headers={"Authorization": f"Bearer {self.token}", "xero-tenant-id": self.tenant,
                                       "Accept": "application/json"})
        if answer.status_code != 200:
            raise XeroSeedFailed(f"seeding the Xero organisation failed ({collection}: HTTP {answer.status_code} "
                                 f"{answer.text[:300]})")
        created: list[dict[str, Any]] = answer.json()[collection]
        return created
