"""A randomized two-way workload: contacts, invoices and payments created and edited in the CRM
(through its JSON API, as a CRM user would) and in QuickBooks (through the sandbox's REST API, as a
QuickBooks user would), with a model of what each side must end up holding.

Rules that keep the expected end state well defined (they avoid conflicts no sync could resolve,
not faults): e-mails never change; an invoice is either "editable" (edited, voided or deleted,
never paid) or "payable" (paid from either side, never edited), and the payments planned for it
never exceed its total; a record is edited from the other side only when its own side has left it
alone for a while; an invoice that may have waited out a disconnection unpushed is voided, never
deleted (its contact's becoming a customer would then depend on the timing).

A Xero tenant (its books in a xero_sandbox organisation) gets the same CRM-side work; in Xero
someone pays its CRM invoices (records made in Xero itself are not imported yet, so none are made).

A tenant is also disconnected from QuickBooks (the card's Disconnect) and reconnected to the same
company a few seconds later, while the workload goes on. The plugin keeps every change it held
meanwhile as a "not synced" record and never pushes it by itself; settling retries each one, as a
user would on the card (tests/harness/soak.py). So a change made while disconnected is lost only
if it is neither in QuickBooks at the end nor was listed as not synced.
"""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import requests
import sqlalchemy as sa

from crm_qbo_plugin.qbo import jsoncodec
from crm_qbo_plugin.store.tables import Link
from tests.harness.stack import USER_CLIENT_ID, Stack
from tests.harness.xero_user import XeroRefused, XeroUnavailable, XeroUser

CENT = Decimal("0.01")
QUIET_SECONDS = 20.0  # a record is edited from the other side only after this long untouched


class Unavailable(Exception):
    """The CRM or QuickBooks did not answer (a fault is in progress); the operation was not done."""


@dataclass
class Invoice:
    side: str  # "crm" or "qbo": where it was born
    key: str  # CRM id (CRM-born) or QBO id (QBO-born)
    total: Decimal
    payable: bool
    contact: str = ""  # the CRM contact of a CRM-born invoice
    paid: Decimal = Decimal("0")
    state: str = "open"  # draft | open | void | deleted
    held: bool = False  # may have been unpushed while its tenant was disconnected: never deleted


XERO = "xero"


@dataclass
class Tenant:
    location: str
    key: str
    realm: str  # the QuickBooks realm, or the Xero organisation's tenant id
    provider: str = "quickbooks"
    weight: float = 1.0  # its share of the workload's steps
    contacts: list[tuple[str, str]] = field(default_factory=list)  # (CRM id, email), CRM-born
    paying: set[str] = field(default_factory=set)  # CRM-born contacts with a membership payment
    customers: list[tuple[str, str]] = field(default_factory=list)  # (QBO id, email), QBO-born
    invoices: list[Invoice] = field(default_factory=list)
    crm_invoice_payments: int = 0
    crm_receipts: int = 0
    qbo_payments: int = 0  # payments made in the books (QuickBooks or Xero)
    touched: dict[str, float] = field(default_factory=dict)  # "crm:<id>"/"qbo:<id>" → last edit
    connected: bool = True
    disconnected_at: float = 0.0

    def billable(self, pushed: Callable[[Invoice], bool]) -> set[str]:
        """CRM contacts that must be QuickBooks customers: a payment, or an invoice that reached
        QuickBooks (one voided or deleted in the CRM before its push never does, on purpose)."""
        return self.paying | {i.contact for i in self.invoices if i.side == "crm" and pushed(i)}

    def expected(self, pushed: Callable[[Invoice], bool], in_qbo: Callable[[Invoice], bool]) -> dict[str, int]:
        live = [i for i in self.invoices if i.state != "deleted"]
        # A sent invoice deleted in the CRM is voided in QuickBooks, never deleted (the audit trail):
        # it stays there when it had got there.
        kept = [i for i in self.invoices if i.state == "deleted" and i.side == "crm" and in_qbo(i)]
        return {
            "contacts": len(self.contacts) + len(self.customers),
            "customers": len(self.billable(pushed)) + len(self.customers),
            "crm_invoices": len(live),
            "qbo_invoices": len([i for i in live if i.side == "qbo" or pushed(i)]) + len(kept),
            "payments": self.crm_invoice_payments + self.qbo_payments,
            "sales_receipts": self.crm_receipts,
            "crm_payments": self.crm_invoice_payments + self.crm_receipts,
        }


class Crm:
    """The reference CRM's JSON API with one location's key."""

    def __init__(self, base: str, key: str) -> None:
        self.base = base
        self.headers = {"Authorization": f"Bearer {key}"}

    def call(self, method: str, path: str, body: Any = None, expect: tuple[int, ...] = (200, 201, 204)) -> Any:
        try:
            answer = requests.request(method, f"{self.base}/api{path}", json=body, headers=self.headers, timeout=120)
        except requests.RequestException as exc:
            raise Unavailable(f"CRM {method} {path}: {type(exc).__name__}") from None
        if answer.status_code >= 500:
            raise Unavailable(f"CRM {method} {path}: HTTP {answer.status_code}")
        if answer.status_code not in expect:
            raise AssertionError(f"CRM {method} {path} answered {answer.status_code}: {answer.text[:300]}")
        return answer.json() if answer.content else None


class QboUser:
    """Someone working in QuickBooks: their own app's token, a requestid on every write (so a retry
    after a fault never writes twice), retries through injected faults and throttling."""

    def __init__(self, stack: Stack, realm: str) -> None:
        self.stack, self.realm = stack, realm
        self.token = ""

    def _refresh(self) -> None:
        self.token = self.stack.sandbox_post("/_sandbox/tokens", {"realm_id": self.realm, "client_id": USER_CLIENT_ID})["access_token"]

    def call(self, method: str, path: str, body: Any = None, params: dict[str, str] | None = None,
             attempts: int = 6) -> dict[str, Any]:
        if not self.token:
            self._refresh()
        params = dict(params or {})
        if method == "POST" and path != "query":
            params.setdefault("requestid", uuid.uuid4().hex)
        last = ""
        for attempt in range(attempts):
            try:
                answer = requests.request(
                    method, f"{self.stack.sandbox_url}/v3/company/{self.realm}/{path}", params=params,
                    data=jsoncodec.dumps(body) if isinstance(body, dict) else body,
                    headers={"Authorization": f"Bearer {self.token}", "Accept": "application/json",
                             "Content-Type": "application/text" if path == "query" else "application/json"},
                    timeout=30)
            except requests.RequestException as exc:
                last = type(exc).__name__
            else:
                if answer.status_code == 401:
                    self._refresh()
                    last = "401"
                elif answer.status_code in (429, 500, 502, 503, 504):
                    last = f"HTTP {answer.status_code}"
                else:
                    data: dict[str, Any] = jsoncodec.loads(answer.content)
                    if answer.status_code != 200:
                        raise QboRefused(answer.status_code, data)
                    return data
            time.sleep(min(4.0, 0.2 * 2 ** attempt))
        raise Unavailable(f"QuickBooks {method} {path}: {last}")

    def create(self, entity: str, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self.call("POST", entity.lower(), body)[entity])

    def read(self, entity: str, qbo_id: str) -> dict[str, Any]:
        return dict(self.call("GET", f"{entity.lower()}/{qbo_id}")[entity])

    def update(self, entity: str, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self.call("POST", entity.lower(), {**body, "sparse": True})[entity])

    def query(self, statement: str) -> list[dict[str, Any]]:
        response = self.call("POST", "query", statement.encode())["QueryResponse"]
        return next((list(v) for v in response.values() if isinstance(v, list)), [])


class QboRefused(Exception):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"HTTP {status}: {str(body)[:300]}")
        self.status, self.body = status, body


class Workload:
    def __init__(self, stack: Stack, tenants: list[Tenant], rng: random.Random, *,
                 disconnect_weight: float = 0.15) -> None:
        self.stack, self.tenants, self.rng = stack, tenants, rng
        self.disconnect_weight = disconnect_weight
        self.ops: Counter[str] = Counter()
        self.connection_changes: Counter[str] = Counter()  # disconnect, reconnect
        self.skipped: Counter[str] = Counter()
        self.serial = 0
        self.crm = {t.location: Crm(stack.web_url, t.key) for t in tenants}
        self.qbo = {t.location: QboUser(stack, t.realm) for t in tenants if t.provider != XERO}
        self.xero = {t.location: XeroUser(stack, t.realm) for t in tenants if t.provider == XERO}

    def _n(self) -> int:
        self.serial += 1
        return self.serial

    # -- what the plugin linked, read from its tables ----------------------------------------
    def qbo_id_of(self, tenant: Tenant, kind: str, crm_id: str) -> str | None:
        table = Link.__table__  # type: ignore[attr-defined]
        with self.stack.engine.connect() as conn:
            return conn.execute(sa.select(table.c.qbo_id).where(
                table.c.tenant_id == tenant.location, table.c.kind == kind, table.c.crm_id == crm_id)).scalar()

    def in_qbo(self, tenant: Tenant) -> Callable[[Invoice], bool]:
        """Whether the plugin got the CRM-born invoice into QuickBooks (its link holds a QuickBooks id)."""
        return lambda invoice: self.qbo_id_of(tenant, "invoice", invoice.key) is not None

    def crm_id_of(self, tenant: Tenant, kind: str, qbo_id: str) -> str | None:
        table = Link.__table__  # type: ignore[attr-defined]
        with self.stack.engine.connect() as conn:
            return conn.execute(sa.select(table.c.crm_id).where(
                table.c.tenant_id == tenant.location, table.c.kind == kind, table.c.qbo_id == qbo_id)).scalar()

    def pushed(self, tenant: Tenant) -> Callable[[Invoice], bool]:
        """Whether a CRM-born invoice must be in QuickBooks: sent, and not voided or deleted before
        its push (then the plugin skips it on purpose; the link says whether it got there)."""
        def check(invoice: Invoice) -> bool:
            if invoice.state == "open":
                return True
            if invoice.state in ("void", "deleted"):
                # it got there before (a deleted one is then voided there) only if its link holds a
                # QuickBooks id; one sent while disconnected and deleted before its Retry never does
                return self.qbo_id_of(tenant, "invoice", invoice.key) is not None
            return False
        return check

    def quiet(self, tenant: Tenant, key: str) -> bool:
        return time.monotonic() - tenant.touched.get(key, 0.0) > QUIET_SECONDS

    # -- one step ------------------------------------------------------------------------------
    def step(self, crm_up: bool = True, qbo_up: bool = True) -> str:
        tenant = self.rng.choices(self.tenants, weights=[t.weight for t in self.tenants])[0]
        crm_ops = [(self.crm_contact, 4), (self.crm_edit_contact, 3), (self.crm_invoice, 4), (self.crm_edit_invoice, 2),
                   (self.crm_pay, 3), (self.crm_receipt, 1), (self.crm_void_or_delete, 1)]
        qbo_ops = [(self.qbo_customer, 3), (self.qbo_edit_customer, 3), (self.qbo_invoice, 3), (self.qbo_pay, 3),
                   (self.qbo_void, 1)]
        if tenant.provider == XERO:
            qbo_ops, qbo_up = [(self.xero_pay, 5)], True  # the Xero sandbox is never stopped
        choices = (crm_ops if crm_up else []) + (qbo_ops if qbo_up else [])
        if crm_up and qbo_up:
            # rare in a long run, as in life (a tenant is disconnected for a while, its changes held, then
            # reconnects); the short soak raises it so that 45 s see a few cycles
            choices.append((self.disconnect_or_reconnect, self.disconnect_weight))
        if not choices:
            return "idle"
        op = self.rng.choices([c[0] for c in choices], weights=[c[1] for c in choices])[0]
        name = op.__name__
        try:
            done = op(tenant)
        except (Unavailable, XeroUnavailable):
            self.skipped[name] += 1
            return f"{name}: unavailable"
        if done:
            self.ops[name] += 1
        return name

    # -- the CRM side --------------------------------------------------------------------------
    def crm_contact(self, tenant: Tenant) -> bool:
        n = self._n()
        email = f"crm{n}@soak.example.com"
        contact = self.crm[tenant.location].call("POST", "/contacts", {
            "first_name": self.rng.choice(["Ada", "Zoë", "O'Brien", "Łukasz", "Renée"]), "last_name": f"Crm {n}",
            "email": email, "phone": f"555-{n:04d}", "company": self.rng.choice(["", "Acme & Sons", "Café Ünïcode"])})
        tenant.contacts.append((contact["id"], email))
        tenant.touched[f"crm:{contact['id']}"] = time.monotonic()
        return True

    def crm_edit_contact(self, tenant: Tenant) -> bool:
        candidates = [c for c, _ in tenant.contacts]
        candidates += [cid for q, _ in tenant.customers if (cid := self.crm_id_of(tenant, "contact", q))
                       and self.quiet(tenant, f"qbo:{q}")]
        if not candidates:
            return False
        crm_id = self.rng.choice(candidates)
        self.crm[tenant.location].call("PATCH", f"/contacts/{crm_id}", {"phone": f"556-{self._n():04d}"})
        tenant.touched[f"crm:{crm_id}"] = time.monotonic()
        return True

    def _lines(self) -> list[dict[str, Any]]:
        return [{"name": self.rng.choice(["Consulting", "Gardening", "Pest control", "Repairs"]),
                 "sku": self.rng.choice([None, "SKU-1", "SKU-2"]), "quantity": str(self.rng.randint(1, 3)),
                 "unit_price": str(Decimal(self.rng.randint(500, 20000)) / 100)}
                for _ in range(self.rng.randint(1, 3))]

    def crm_invoice(self, tenant: Tenant) -> bool:
        if not tenant.contacts and not tenant.customers:
            return False
        contact_id = self.rng.choice([c for c, _ in tenant.contacts] or [""])
        if not contact_id:
            return False
        api = self.crm[tenant.location]
        draft = api.call("POST", "/invoices", {"contact_id": contact_id, "lines": self._lines()})
        invoice = Invoice("crm", draft["id"], Decimal(draft["total"]), payable=self.rng.random() < 0.6,
                          contact=contact_id, state="draft", held=not tenant.connected)
        tenant.invoices.append(invoice)
        api.call("POST", f"/invoices/{draft['id']}/send")  # a draft stays a draft if this fails
        invoice.state = "open"
        return True

    def crm_edit_invoice(self, tenant: Tenant) -> bool:
        editable = [i for i in tenant.invoices if i.side == "crm" and not i.payable and i.state == "open"]
        if not editable:
            return False
        invoice = self.rng.choice(editable)
        answer = self.crm[tenant.location].call("PATCH", f"/invoices/{invoice.key}", {"lines": self._lines()})
        invoice.total = Decimal(answer["total"])
        return True

    def crm_void_or_delete(self, tenant: Tenant) -> bool:
        editable = [i for i in tenant.invoices if i.side == "crm" and not i.payable and i.state == "open"]
        if not editable:
            return False
        invoice = self.rng.choice(editable)
        if invoice.held or self.rng.random() < 0.5:
            self.crm[tenant.location].call("POST", f"/invoices/{invoice.key}/void")
            invoice.state = "void"
        else:
            self.crm[tenant.location].call("DELETE", f"/invoices/{invoice.key}")
            invoice.state = "deleted"
        return True

    def _amount(self, invoice: Invoice, ceiling: Decimal) -> Decimal:
        remaining = min(invoice.total - invoice.paid, ceiling)
        if remaining <= 0:
            return Decimal("0")
        return remaining if self.rng.random() < 0.5 else max(CENT, (remaining / 3).quantize(CENT))

    def crm_pay(self, tenant: Tenant) -> bool:
        payable = [i for i in tenant.invoices if i.payable and i.state == "open" and i.paid < i.total]
        if not payable:
            return False
        invoice = self.rng.choice(payable)
        crm_id = invoice.key if invoice.side == "crm" else self.crm_id_of(tenant, "invoice", invoice.key)
        if crm_id is None:
            return False  # not imported yet
        amount = self._amount(invoice, invoice.total)
        if amount <= 0:
            return False
        self.crm[tenant.location].call("POST", "/payments", {"source": "invoice", "invoice_id": crm_id, "amount": str(amount)})
        invoice.paid += amount
        tenant.crm_invoice_payments += 1
        return True

    def crm_receipt(self, tenant: Tenant) -> bool:
        if not tenant.contacts:
            return False
        contact_id, _ = self.rng.choice(tenant.contacts)
        self.crm[tenant.location].call("POST", "/payments", {
            "source": "membership", "contact_id": contact_id, "amount": str(Decimal(self.rng.randint(100, 9999)) / 100)})
        tenant.crm_receipts += 1
        tenant.paying.add(contact_id)
        return True

    # -- the connection ------------------------------------------------------------------------
    def disconnect_or_reconnect(self, tenant: Tenant) -> bool:
        """Disconnect a connected tenant (as on the card); reconnect a disconnected one to the same
        company after a few seconds of workload. Both run the plugin's own connect and unlink code."""
        if tenant.connected:
            for invoice in tenant.invoices:  # not pushed yet: it may be held while disconnected
                if invoice.side == "crm" and invoice.state == "open" and self.qbo_id_of(tenant, "invoice", invoice.key) is None:
                    invoice.held = True
            try:
                self.stack.disconnect(tenant.location)
            finally:  # the tokens are forgotten before Intuit is told, so read what happened
                tenant.connected = self.connection_status(tenant) != "disconnected"
            tenant.disconnected_at = time.monotonic()
            self.connection_changes["disconnect"] += not tenant.connected
            return not tenant.connected
        if time.monotonic() - tenant.disconnected_at < 3.0:
            return False
        self.reconnect(tenant)
        return True

    def reconnect(self, tenant: Tenant) -> None:
        from crm_qbo_plugin.onboarding.lifecycle import ConnectRefused
        from crm_qbo_plugin.qbo import QboError
        from crm_qbo_plugin.xero import XeroError

        try:
            if tenant.provider == XERO:
                self.stack.connect_xero(tenant.location, tenant.realm, reconnect=True)
            else:
                self.stack.reconnect(tenant.location, tenant.realm)
        except (requests.RequestException, QboError, XeroError, ConnectRefused) as exc:  # "Try again"
            raise Unavailable(f"reconnect: {type(exc).__name__}") from None
        tenant.connected = True
        self.connection_changes["reconnect"] += 1

    def connection_status(self, tenant: Tenant) -> str:
        from crm_qbo_plugin.store.tables import Connection

        table = Connection.__table__  # type: ignore[attr-defined]
        with self.stack.engine.connect() as conn:
            return str(conn.execute(sa.select(table.c.status).where(table.c.tenant_id == tenant.location)).scalar())

    # -- the QuickBooks side -------------------------------------------------------------------
    def qbo_customer(self, tenant: Tenant) -> bool:
        n = self._n()
        email = f"qbo{n}@soak.example.com"
        customer = self.qbo[tenant.location].create("Customer", {
            "DisplayName": f"Qbo Customer {n}", "GivenName": "Qbo", "FamilyName": f"Customer {n}",
            "PrimaryEmailAddr": {"Address": email}, "PrimaryPhone": {"FreeFormNumber": f"777-{n:04d}"}})
        tenant.customers.append((str(customer["Id"]), email))
        tenant.touched[f"qbo:{customer['Id']}"] = time.monotonic()
        return True

    def qbo_edit_customer(self, tenant: Tenant) -> bool:
        candidates = [q for q, _ in tenant.customers]
        candidates += [q for c, _ in tenant.contacts if (q := self.qbo_id_of(tenant, "contact", c))
                       and self.quiet(tenant, f"crm:{c}")]
        if not candidates:
            return False
        qbo_id = self.rng.choice(candidates)
        qbo = self.qbo[tenant.location]
        current = qbo.read("Customer", qbo_id)
        try:
            qbo.update("Customer", {"Id": qbo_id, "SyncToken": current["SyncToken"],
                                    "PrimaryPhone": {"FreeFormNumber": f"778-{self._n():04d}"}})
        except QboRefused as exc:
            if "5010" in str(exc.body):  # the plugin wrote it in between: a QBO user would reload
                return False
            raise
        tenant.touched[f"qbo:{qbo_id}"] = time.monotonic()
        return True

    def qbo_invoice(self, tenant: Tenant) -> bool:
        customers = [q for q, _ in tenant.customers]
        customers += [q for c, _ in tenant.contacts[-8:] if (q := self.qbo_id_of(tenant, "contact", c))]
        if not customers:
            return False
        amount = Decimal(self.rng.randint(1000, 50000)) / 100
        invoice = self.qbo[tenant.location].create("Invoice", {
            "CustomerRef": {"value": self.rng.choice(customers)},
            "Line": [{"DetailType": "SalesItemLineDetail", "Amount": amount,
                      "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "Qty": Decimal(1), "UnitPrice": amount}}]})
        tenant.invoices.append(Invoice("qbo", str(invoice["Id"]), Decimal(str(invoice["TotalAmt"])),
                                       payable=self.rng.random() < 0.7))
        return True

    def qbo_pay(self, tenant: Tenant) -> bool:
        payable = [i for i in tenant.invoices if i.payable and i.state == "open" and i.paid < i.total]
        if not payable:
            return False
        invoice = self.rng.choice(payable)
        qbo_id = invoice.key if invoice.side == "qbo" else self.qbo_id_of(tenant, "invoice", invoice.key)
        if qbo_id is None:
            return False  # not pushed yet
        qbo = self.qbo[tenant.location]
        current = qbo.read("Invoice", qbo_id)
        amount = self._amount(invoice, Decimal(str(current["Balance"])))
        if amount <= 0:
            return False
        qbo.create("Payment", {"CustomerRef": current["CustomerRef"], "TotalAmt": amount,
                               "Line": [{"Amount": amount, "LinkedTxn": [{"TxnId": qbo_id, "TxnType": "Invoice"}]}]})
        invoice.paid += amount
        tenant.qbo_payments += 1
        return True

    def qbo_void(self, tenant: Tenant) -> bool:
        voidable = [i for i in tenant.invoices if i.side == "qbo" and not i.payable and i.state == "open"]
        if not voidable:
            return False
        invoice = self.rng.choice(voidable)
        qbo = self.qbo[tenant.location]
        current = qbo.read("Invoice", invoice.key)
        qbo.call("POST", "invoice", {"Id": invoice.key, "SyncToken": current["SyncToken"]}, params={"operation": "void"})
        invoice.state = "void"
        return True

    # -- the Xero side -------------------------------------------------------------------------
    def xero_pay(self, tenant: Tenant) -> bool:
        """Someone pays a CRM invoice in Xero (part or all of what Xero says is due)."""
        payable = [i for i in tenant.invoices if i.payable and i.state == "open" and i.paid < i.total]
        if not payable:
            return False
        invoice = self.rng.choice(payable)
        xero_id = self.qbo_id_of(tenant, "invoice", invoice.key)
        if xero_id is None:
            return False  # not pushed yet
        xero = self.xero[tenant.location]
        current = xero.invoice(xero_id)
        if current["Status"] != "AUTHORISED":
            return False
        amount = self._amount(invoice, Decimal(str(current["AmountDue"])))
        if amount <= 0:
            return False
        try:
            xero.pay(xero_id, amount)
        except XeroRefused as exc:
            if "exceeds the amount outstanding" in exc.body:  # a CRM payment landed in between
                return False
            raise
        invoice.paid += amount
        tenant.qbo_payments += 1
        return True
