"""What each REST call does to a company: read, create, update, delete, void, send, query, CDC.

One :class:`Operations` per request. State changes happen under the company lock; name-list
writes first pass :meth:`Company.name_write` (QBO's "one name at a time" rule). Webhook
notices are collected and handed to ``notify`` after the lock is released.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from qbo_sandbox import entities, errors, query
from qbo_sandbox.companies import NAME_LISTS, TRANSACTIONS, Company, Record
from qbo_sandbox.entities import ZERO, Prepared, WriteContext, as_bool, ref_id
from qbo_sandbox.timefmt import meta_time, parse_datetime

Notify = Callable[[str, str, str, str, datetime, "dict[str, Any] | None"], None]

#: URL segment -> entity name, for every entity the sandbox serves.
ENTITY_PATHS = {name.lower(): name for name in (
    "Customer", "Vendor", "Employee", "Item", "Account", "Invoice", "SalesReceipt", "Payment",
    "CreditMemo", "TaxCode", "TaxRate", "CompanyInfo", "Preferences",
)}
WRITABLE = ("Customer", "Vendor", "Employee", "Item", "Account", *TRANSACTIONS)
NAME_WRITES = ("Customer", "Vendor", "Employee", "Item")
SALES_FORMS = ("Invoice", "SalesReceipt", "CreditMemo")
QUERYABLE = tuple(entities.QUERY_FIELDS)
ACTIVE_BY_DEFAULT = NAME_LISTS
#: QBO entities the sandbox does not model but CDC accepts (they never change here).
CDC_OTHER = ("Estimate", "Bill", "BillPayment", "Purchase", "PurchaseOrder", "RefundReceipt",
             "Deposit", "Transfer", "JournalEntry", "VendorCredit", "Class", "Department",
             "Term", "PaymentMethod", "Attachable", "Budget", "Currency")
CDC_UNSUPPORTED = ("JournalCode", "TimeActivity", "TaxAgency", "TaxCode", "TaxRate")
CDC_SUPPORTED = ("Customer", "Vendor", "Employee", "Item", "Account", *TRANSACTIONS,
                 "Preferences", "CompanyInfo")
CDC_MAX_OBJECTS = 1000
CDC_WINDOW = timedelta(days=30)


class Operations:
    """The REST semantics for one company and one request."""

    def __init__(self, company: Company, now: datetime, notify: Notify | None = None,
                 allow_duplicate_doc_number: bool = False) -> None:
        self.company = company
        self.now = now
        self.notify = notify
        self.ctx = WriteContext(company, now, allow_duplicate_doc_number)
        self.changes: list[tuple[str, str, str, datetime, dict[str, Any] | None]] = []

    # ------------------------------------------------------------------ plumbing

    def flush(self) -> None:
        """Hand collected changes to the webhook dispatcher (call outside the lock)."""
        if self.notify is not None:
            for entity, entity_id, op, when, data in self.changes:
                self.notify(self.company.realm_id, entity, entity_id, op, when, data)
        self.changes.clear()

    def _changed(self, entity: str, entity_id: str, op: str) -> None:
        self.changes.append((entity, entity_id, op, self.now, None))

    def _stamp(self, data: dict[str, Any], entity_id: str, token: str,
               created: str | None) -> dict[str, Any]:
        now = meta_time(self.now, self.company.tz)
        out: dict[str, Any] = {"Id": entity_id, "SyncToken": token, "domain": "QBO", "sparse": False}
        out.update(data)
        out["Id"] = entity_id
        out["SyncToken"] = token
        out["domain"] = "QBO"
        out["sparse"] = False
        out["MetaData"] = {"CreateTime": created or now, "LastUpdatedTime": now}
        return out

    @contextmanager
    def _write_guard(self, entity: str) -> Iterator[None]:
        guard = (self.company.name_write(items=entity == "Item") if entity in NAME_WRITES
                 else nullcontext())
        with guard, self.company.lock:
            yield

    def _require(self, entity: str, entity_id: Any) -> Record:
        record = self.company.get(entity, str(entity_id)) if entity_id not in (None, "") else None
        if record is None:
            raise errors.object_not_found()
        return record

    @staticmethod
    def _check_token(record: Record, body: dict[str, Any]) -> None:
        token = body.get("SyncToken")
        if token is None or token == "":
            raise errors.required_missing("SyncToken")
        if str(token).strip() != record.data["SyncToken"]:
            raise errors.stale_object()

    @staticmethod
    def _next_token(record: Record) -> str:
        return str(int(record.data["SyncToken"]) + 1)

    def _check_period(self, *dates: date | None) -> None:
        closed = self.company.books_closed_date
        if closed is not None and any(d is not None and d <= closed for d in dates):
            raise errors.period_closed()

    @staticmethod
    def _txn_date(record: Record | None) -> date | None:
        if record is None or "TxnDate" not in record.data:
            return None
        return date.fromisoformat(record.data["TxnDate"])

    # ------------------------------------------------------------------ read

    def read(self, entity: str, entity_id: str) -> dict[str, Any]:
        if entity == "CompanyInfo":
            entity_id = "1"
        return self._require(entity, entity_id).data

    # ------------------------------------------------------------------ writes

    def write(self, entity: str, body: Any, operation: str = "",
              include: tuple[str, ...] = ()) -> dict[str, Any]:
        """POST /{entity}: create, full/sparse update, delete, void. Returns the entity dict."""
        if not isinstance(body, dict):
            raise errors.bad_request_body("The request body must be a JSON object")
        op = operation.lower()
        if entity == "Preferences" and op in ("", "update"):
            return self.update_preferences(body)
        if entity not in WRITABLE:
            raise errors.unsupported(f"Operation {operation or 'Create'} is not supported.")
        if op == "delete":
            return self.delete(entity, body)
        if op == "void":
            if entity != "Invoice":
                raise errors.unsupported("Operation Void is not supported.")
            return self.void(entity, body)
        if op == "update" and "void" in include:
            if entity not in ("Payment", "SalesReceipt"):
                raise errors.unsupported("Operation Void is not supported.")
            return self.void(entity, body)
        if op not in ("", "create", "update"):
            raise errors.unsupported(f"Operation {operation} is not supported.")
        if body.get("Id") not in (None, "", 0, "0"):
            return self.update(entity, body)
        return self.create(entity, body)

    def create(self, entity: str, body: dict[str, Any]) -> dict[str, Any]:
        data = entities.writable(entity, body)
        with self._write_guard(entity):
            entity_id = self.company.new_id(entity) if entity not in TRANSACTIONS else ""
            prepared = self._prepare(entity, entity_id, data, None)
            if entity in TRANSACTIONS:
                self._check_period(prepared.txn_date)
                entity_id = self.company.new_id(entity)
            stored = self._stamp(prepared.data, entity_id, "0", None)
            record = Record(stored, self.now, self.now)
            self._store(entity, record, prepared, None)
        self._changed(entity, entity_id, "Create")
        return record.data

    def update(self, entity: str, body: dict[str, Any]) -> dict[str, Any]:
        entity_id = str(body.get("Id"))
        with self._write_guard(entity):
            existing = self._require(entity, entity_id)
            self._check_token(existing, body)
            incoming = entities.writable(entity, body)
            if as_bool(body.get("sparse"), False):
                data = entities.writable(entity, existing.data)
                data.update(incoming)
            else:
                data = incoming
            prepared = self._prepare(entity, entity_id, data, existing)
            if entity in TRANSACTIONS:
                self._check_period(prepared.txn_date, self._txn_date(existing))
            stored = self._stamp(prepared.data, entity_id, self._next_token(existing),
                                 existing.data["MetaData"]["CreateTime"])
            record = Record(stored, existing.created, self.now, voided=existing.voided)
            self._store(entity, record, prepared, existing)
        op = "Update"
        if existing.data.get("Active") is not False and record.data.get("Active") is False:
            op = "Delete"  # QBO reports an inactivated name as deleted
        self._changed(entity, entity_id, op)
        return record.data

    def delete(self, entity: str, body: dict[str, Any]) -> dict[str, Any]:
        if entity not in TRANSACTIONS:
            raise errors.unsupported("Operation Delete is not supported.")
        entity_id = str(body.get("Id") or "")
        with self.company.lock:
            existing = self._require(entity, entity_id)
            self._check_token(existing, body)
            self._check_period(self._txn_date(existing))
            if self.company.applications.get((entity, entity_id)):
                raise errors.business(
                    "This transaction has payments applied to it. Remove the payments before "
                    "you delete or void it."
                )
            if entity == "Payment":
                self._apply_payment(entity_id, {})
            self.company.remove(entity, entity_id, self.now)
            self.company.set_doc_number(entity, entity_id, existing.data.get("DocNumber"), None)
            customer_id = ref_id(existing.data, "CustomerRef")
            if customer_id:
                self.company.customer_txns.get(customer_id, set()).discard((entity, entity_id))
                self._refresh_customer_balance(customer_id)
        self._changed(entity, entity_id, "Delete")
        return {"status": "Deleted", "domain": "QBO", "Id": entity_id}

    def void(self, entity: str, body: dict[str, Any]) -> dict[str, Any]:
        entity_id = str(body.get("Id") or "")
        with self.company.lock:
            existing = self._require(entity, entity_id)
            self._check_token(existing, body)
            self._check_period(self._txn_date(existing))
            if self.company.applications.get((entity, entity_id)):
                raise errors.business(
                    "This transaction has payments applied to it. Remove the payments before "
                    "you delete or void it."
                )
            data = copy.deepcopy(existing.data)
            if entity == "Payment":
                self._apply_payment(entity_id, {})
                data.update(TotalAmt=ZERO, UnappliedAmt=ZERO, Line=[])
            else:
                for line in data.get("Line", []):
                    line["Amount"] = ZERO
                    detail = line.get("SalesItemLineDetail")
                    if isinstance(detail, dict):
                        detail["Qty"] = ZERO
                        detail.pop("UnitPrice", None)
                        detail.pop("TaxInclusiveAmt", None)
                data.update(TotalAmt=ZERO, Balance=ZERO, TxnTaxDetail={"TotalTax": ZERO})
                if entity == "Invoice":
                    data["Deposit"] = ZERO
                for key in ("HomeTotalAmt", "HomeBalance"):
                    if key in data:
                        data[key] = ZERO
            note = data.get("PrivateNote")
            data["PrivateNote"] = f"Voided - {note}" if note else "Voided"
            stored = self._stamp(data, entity_id, self._next_token(existing),
                                 existing.data["MetaData"]["CreateTime"])
            record = Record(stored, existing.created, self.now, voided=True)
            self.company.put(entity, record)
            customer_id = ref_id(data, "CustomerRef")
            if customer_id:
                self._refresh_customer_balance(customer_id)
        self._changed(entity, entity_id, "Void")
        return record.data

    def send(self, entity: str, entity_id: str, send_to: str | None) -> dict[str, Any]:
        """POST /{entity}/{id}/send: EmailStatus=EmailSent + DeliveryInfo (SyncToken unchanged)."""
        if entity not in SALES_FORMS:
            raise errors.unsupported("Operation Send is not supported.")
        with self.company.lock:
            existing = self._require(entity, entity_id)
            data = copy.deepcopy(existing.data)
            if send_to:
                entities.check_email({"BillEmail": {"Address": send_to}}, "BillEmail")
                data["BillEmail"] = {"Address": send_to}
            if not (data.get("BillEmail") or {}).get("Address"):
                raise errors.business("An email address is required to send this transaction.")
            data["EmailStatus"] = "EmailSent"
            data["DeliveryInfo"] = {"DeliveryType": "Email",
                                    "DeliveryTime": meta_time(self.now, self.company.tz)}
            data["MetaData"] = {**data["MetaData"],
                                "LastUpdatedTime": meta_time(self.now, self.company.tz)}
            record = Record(data, existing.created, self.now, voided=existing.voided)
            self.company.put(entity, record)
        self._changed(entity, entity_id, "Emailed")
        return record.data

    def update_preferences(self, body: dict[str, Any]) -> dict[str, Any]:
        with self.company.lock:
            existing = self._require("Preferences", "1")
            if body.get("SyncToken") not in (None, ""):
                self._check_token(existing, body)
            data = copy.deepcopy(existing.data)
            for key, value in entities.writable("Preferences", body).items():
                if isinstance(value, dict) and isinstance(data.get(key), dict):
                    data[key] = {**data[key], **value}
                else:
                    data[key] = value
            if existing.data["CurrencyPrefs"].get("MultiCurrencyEnabled") and not data[
                    "CurrencyPrefs"].get("MultiCurrencyEnabled"):
                raise errors.business("Multicurrency cannot be turned off once it is on.")
            data["CurrencyPrefs"]["HomeCurrency"] = existing.data["CurrencyPrefs"]["HomeCurrency"]
            stored = self._stamp(data, "1", self._next_token(existing),
                                 existing.data["MetaData"]["CreateTime"])
            record = Record(stored, existing.created, self.now)
            self.company.put("Preferences", record)
        self._changed("Preferences", "1", "Update")
        return record.data

    # ------------------------------------------------------------------ write internals

    def _prepare(self, entity: str, entity_id: str, data: dict[str, Any],
                 existing: Record | None) -> Prepared:
        if entity in ("Customer", "Vendor", "Employee"):
            return entities.person(self.ctx, entity, entity_id, data, existing)
        if entity == "Item":
            return entities.item(self.ctx, entity_id, data, existing)
        if entity == "Account":
            return entities.account(self.ctx, entity_id, data, existing)
        if entity == "Payment":
            return entities.payment(self.ctx, entity_id, data, existing, self._open_balance_for(entity_id))
        applied = ZERO
        if existing is not None:
            applied = sum(self.company.applications.get((entity, entity_id), {}).values(), ZERO)
        prepared = entities.sales_form(self.ctx, entity, entity_id, data, existing, applied)
        if existing is not None and entity != "SalesReceipt":
            # QBO keeps an invoice's read-only Payment links through any update (full or sparse)
            self._link_payments(entity, entity_id, prepared.data)
        return prepared

    def _link_payments(self, kind: str, txn_id: str, data: dict[str, Any]) -> None:
        """Set `data`'s Payment LinkedTxn entries from the payments applied to it now."""
        apps = self.company.applications.get((kind, txn_id), {})
        links = [lt for lt in data.get("LinkedTxn", []) if lt.get("TxnType") != "Payment"]
        links += [{"TxnId": pid, "TxnType": "Payment"}
                  for pid in sorted(apps, key=lambda p: int(p) if p.isdigit() else 0)]
        if links or kind == "Invoice" or "LinkedTxn" in data:
            data["LinkedTxn"] = links

    def _open_balance_for(self, payment_id: str) -> Callable[[str, str], Decimal | None]:
        mine = self.company.payment_apps.get(payment_id, {})

        def open_balance(kind: str, txn_id: str) -> Decimal | None:
            record = self.company.get(kind, txn_id)
            if record is None or record.voided:
                return None
            key = "Balance" if kind == "Invoice" else "RemainingCredit"
            return Decimal(record.data.get(key, ZERO)) + mine.get((kind, txn_id), ZERO)

        return open_balance

    def _store(self, entity: str, record: Record, prepared: Prepared, existing: Record | None) -> None:
        company = self.company
        entity_id = record.data["Id"]
        if entity in NAME_LISTS and prepared.name is not None:
            old = None
            if existing is not None:
                old = existing.data.get("DisplayName") or existing.data.get("Name")
            company.claim_name(entity, entity_id, old, prepared.name)
        if entity == "Customer":
            if prepared.opening_balance is not None:
                company.opening_balances[entity_id] = prepared.opening_balance
            balance = self._customer_balance(entity_id)
            record.data["Balance"] = balance
            record.data["BalanceWithJobs"] = balance
        company.put(entity, record)
        if entity in SALES_FORMS:
            company.set_doc_number(entity, entity_id,
                                   existing.data.get("DocNumber") if existing else None,
                                   prepared.doc_number)
        if entity == "Payment":
            self._apply_payment(entity_id, prepared.applications)
        if entity in TRANSACTIONS:
            old_customer = ref_id(existing.data, "CustomerRef") if existing else None
            new_customer = prepared.customer_id
            if old_customer and old_customer != new_customer:
                company.customer_txns.get(old_customer, set()).discard((entity, entity_id))
                self._refresh_customer_balance(old_customer)
            if new_customer:
                company.customer_txns.setdefault(new_customer, set()).add((entity, entity_id))
                self._refresh_customer_balance(new_customer)

    def _apply_payment(self, payment_id: str, new: dict[tuple[str, str], Decimal]) -> None:
        """Move a payment's applications to ``new``; touched invoices get Balance/LinkedTxn."""
        company = self.company
        old = company.payment_apps.get(payment_id, {})
        touched = set(old) | set(new)
        for key in old:
            company.applications.get(key, {}).pop(payment_id, None)
        for key, amount in new.items():
            company.applications.setdefault(key, {})[payment_id] = amount
        if new:
            company.payment_apps[payment_id] = dict(new)
        else:
            company.payment_apps.pop(payment_id, None)
        for kind, txn_id in sorted(touched):
            if old.get((kind, txn_id)) == new.get((kind, txn_id)):
                continue
            record = company.get(kind, txn_id)
            if record is None:
                continue
            self._relink(kind, record)

    def _relink(self, kind: str, record: Record) -> None:
        company = self.company
        txn_id = record.data["Id"]
        apps = company.applications.get((kind, txn_id), {})
        applied = sum(apps.values(), ZERO)
        data = copy.deepcopy(record.data)
        total = Decimal(data.get("TotalAmt", ZERO))
        if kind == "Invoice":
            data["Balance"] = total - Decimal(data.get("Deposit", ZERO)) - applied
        else:
            data["Balance"] = total - applied
            data["RemainingCredit"] = total - applied
        if "HomeBalance" in data and "ExchangeRate" in data:
            data["HomeBalance"] = entities.rounded(data["Balance"] * Decimal(data["ExchangeRate"]))
        self._link_payments(kind, txn_id, data)
        stored = self._stamp(data, txn_id, self._next_token(record),
                             record.data["MetaData"]["CreateTime"])
        company.put(kind, Record(stored, record.created, self.now, voided=record.voided))
        self._changed(kind, txn_id, "Update")

    def _customer_balance(self, customer_id: str) -> Decimal:
        company = self.company
        balance = company.opening_balances.get(customer_id, ZERO)
        for kind, txn_id in company.customer_txns.get(customer_id, ()):
            record = company.get(kind, txn_id)
            if record is None:
                continue
            if kind == "Invoice":
                balance += Decimal(record.data.get("Balance", ZERO))
            elif kind == "CreditMemo":
                balance -= Decimal(record.data.get("Balance", ZERO))
            elif kind == "Payment":
                balance -= Decimal(record.data.get("UnappliedAmt", ZERO))
        return balance

    def _refresh_customer_balance(self, customer_id: str) -> None:
        """Customer Balance tracks open A/R (QBO does not bump the customer's SyncToken)."""
        record = self.company.get("Customer", customer_id)
        if record is None:
            return
        balance = self._customer_balance(customer_id)
        if record.data.get("Balance") == balance:
            return
        data = {**record.data, "Balance": balance, "BalanceWithJobs": balance}
        self.company.put("Customer", Record(data, record.created, record.updated, record.voided))

    # ------------------------------------------------------------------ query

    def query(self, text: str) -> dict[str, Any]:
        parsed = query.parse(text)
        entity = parsed.entity
        if entity not in QUERYABLE:
            raise query.QueryError(
                4001, f"QueryValidationError: Entity {entity} is not supported or does not exist"
            )
        query.validate(parsed, entities.QUERY_FIELDS[entity] | set(parsed.extra_fields))
        if entity in ACTIVE_BY_DEFAULT and not parsed.constrains("Active"):
            parsed = query.with_condition(parsed, query.Condition(("Active",), "=", True))
        with self.company.lock:
            rows = [r.data for r in self.company.table(entity).values()]
        page, total = query.run(parsed, rows, self.company.tz)
        if parsed.count:
            return {"totalCount": total}
        if not page:
            return {}
        return {entity: page, "startPosition": parsed.start_position, "maxResults": len(page),
                "totalCount": len(page)}

    # ------------------------------------------------------------------ CDC

    def cdc(self, entity_list: str | None, changed_since: str | None) -> list[dict[str, Any]]:
        """The ``QueryResponse`` list of a CDC answer."""
        names = [n.strip() for n in (entity_list or "").split(",") if n.strip()]
        if not names:
            raise errors.required_missing("entities")
        if not changed_since:
            raise errors.required_missing("changedSince")
        for name in names:
            if name in CDC_UNSUPPORTED or (name not in CDC_SUPPORTED and name not in CDC_OTHER):
                raise errors.unsupported(f"Operation cdc for entity {name} is not supported.")
        try:
            since = parse_datetime(changed_since, self.company.tz)
        except ValueError:
            raise errors.QBOError(
                2170, "Invalid Date",
                f"Invalid Date : changedSince {changed_since} is not a valid date or date-time",
                element="changedSince",
            ) from None
        if since < self.now - CDC_WINDOW:
            raise errors.unsupported(
                f"Operation cdc with changedSince date {changed_since} which is older than "
                "fixed days is not supported."
            )
        found: list[tuple[datetime, int, str, dict[str, Any]]] = []
        with self.company.lock:
            for name in dict.fromkeys(names):
                for record in self.company.records.get(name, {}).values():
                    if record.updated >= since:
                        found.append((record.updated, 0, name, record.data))
                for entity_id, when in self.company.tombstones.get(name, {}).items():
                    if when >= since:
                        stub = {"status": "Deleted", "domain": "QBO", "Id": entity_id,
                                "MetaData": {"LastUpdatedTime": meta_time(when, self.company.tz)}}
                        found.append((when, 1, name, stub))
        found.sort(key=lambda f: f[0])
        found = found[:CDC_MAX_OBJECTS]
        groups: dict[str, list[tuple[datetime, int, dict[str, Any]]]] = {}
        for when, deleted, name, data in found:
            groups.setdefault(name, []).append((when, deleted, data))
        responses: list[dict[str, Any]] = []
        for name in dict.fromkeys(names):
            rows = groups.get(name)
            if not rows:
                continue
            rows.sort(key=lambda r: (r[1], r[0]))  # live first, then deleted; each by time
            objects = [r[2] for r in rows]
            responses.append({name: objects, "startPosition": 1, "maxResults": len(objects)})
        return responses or [{}]
