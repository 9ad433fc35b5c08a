"""The Accounting API's rules: contacts, items, invoices and payments of one organisation.

Every write validates the whole element before changing anything, so a refused element leaves
no trace (``ElementError`` carries Xero's messages). Records are stored as the JSON dicts Xero
returns; money is ``Decimal`` rounded half away from zero to 2 dp; tax is computed per line,
rounded, then summed (Xero's rounding guide).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from xero_sandbox.orgs import Org, Record
from xero_sandbox.timefmt import date_string, iso_utc, ms_json, ms_json_date, parse_date

Notify = Callable[[str, str, str, datetime], None]  # (category, event, resource id, when)
CENT = Decimal("0.01")
MAX_NUMBER = Decimal(10) ** 12  # keeps every product and rounding inside Decimal's precision

INVOICE_STATUSES = ("DRAFT", "SUBMITTED", "AUTHORISED", "PAID", "VOIDED", "DELETED")
LINE_AMOUNT_TYPES = ("Exclusive", "Inclusive", "NoTax")
CONTACT_STATUSES = ("ACTIVE", "ARCHIVED", "GDPRREQUEST")
CONTACT_FIELDS = ("ContactNumber", "AccountNumber", "FirstName", "LastName", "EmailAddress",
                  "CompanyNumber", "TaxNumber", "BankAccountDetails", "Website",
                  "AccountsReceivableTaxType", "AccountsPayableTaxType", "DefaultCurrency",
                  "SkypeUserName")
CONTACT_LISTS = ("Addresses", "Phones", "ContactPersons")
LIMITS = {"Name": 255, "ContactNumber": 50, "AccountNumber": 50, "FirstName": 255,
          "LastName": 255, "EmailAddress": 255, "CompanyNumber": 50, "TaxNumber": 50}

MSG_NOT_VALID_STATUS = "Invoice not of valid status for modification"
MSG_HAS_PAYMENTS = ("This document cannot be edited as it has a payment or credit note "
                    "allocated to it.")
MSG_IDENTIFY = ("The Contact must contain at least 1 of the following elements to identify "
                "the contact: Name, ContactID, ContactNumber")
MSG_ARCHIVED = ("The contact with the specified contact details has been archived. The contact "
                "must be un-archived before creating new invoices or credit notes.")
MSG_ARCHIVED_UPDATE = "The specified contact details matched an archived contact"
MSG_NOT_FOUND = "The document with the supplied id was not found for this endpoint."
MSG_OVERPAYMENT = "Payment amount exceeds the amount outstanding on this document"
MSG_ONLY_STATUS = "Only Status accepted for updates."


class ElementError(Exception):
    """One element refused: Xero's ``ValidationErrors`` messages."""

    def __init__(self, *messages: str) -> None:
        super().__init__("; ".join(messages))
        self.messages = list(messages)


class NotFound(Exception):
    """An unknown id in the URL: 404."""


def money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def dec(value: Any, name: str) -> Decimal:
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise ElementError(f"{name} must be a number") from None
    if not number.is_finite() or abs(number) >= MAX_NUMBER:
        raise ElementError(f"{name} must be a number below 1,000,000,000,000")
    return number


def boolean(value: Any) -> bool:
    return value if isinstance(value, bool) else str(value).strip().lower() == "true"


def guid(value: Any) -> str | None:
    """A GUID with or without dashes, lower case; None if it is not one."""
    try:
        return str(uuid.UUID(str(value).strip()))
    except (ValueError, AttributeError):
        return None


def _text(element: dict[str, Any], key: str) -> str | None:
    value = element.get(key)
    if value is None:
        return None
    if isinstance(value, (dict, list)):
        raise ElementError(f"{key} must be text")
    return str(value)


class Accounting:
    """Operations on one organisation; call with ``org.lock`` held."""

    def __init__(self, org: Org, now: datetime, notify: Notify, *, unitdp: int = 2) -> None:
        self.org = org
        self.now = now
        self.notify = notify
        self.unit_quantum = Decimal(1).scaleb(-unitdp)

    def _stamp(self, data: dict[str, Any]) -> None:
        data["UpdatedDateUTC"] = ms_json(self.now)

    # ------------------------------------------------------------------ contacts

    def _active_name_taken(self, name: str, except_id: str | None) -> bool:
        return any(r.data["ContactID"] != except_id and r.data["ContactStatus"] == "ACTIVE"
                   for r in self.org.contacts_named(name))

    def _find_contact_by_number(self, number: str) -> Record | None:
        cid = self.org.contact_numbers.get(number)
        return self.org.contacts.get(cid) if cid else None

    def save_contact(self, element: dict[str, Any], create_only: bool) -> dict[str, Any]:
        existing: Record | None = None
        if not create_only:
            if element.get("ContactID"):
                cid = guid(element["ContactID"])
                existing = self.org.contacts.get(cid or "")
                if existing is None:
                    raise ElementError(MSG_NOT_FOUND)
            elif element.get("ContactNumber"):
                existing = self._find_contact_by_number(str(element["ContactNumber"]))
        data: dict[str, Any] = dict(existing.data) if existing else {
            "ContactID": str(uuid.uuid4()), "ContactStatus": "ACTIVE", "Name": "",
            "Addresses": [], "Phones": [], "ContactGroups": [], "ContactPersons": [],
            "IsSupplier": False, "IsCustomer": False, "HasAttachments": False,
            "HasValidationErrors": False,
        }
        errors: list[str] = []
        status = (_text(element, "ContactStatus") or data["ContactStatus"]).upper()
        if status not in CONTACT_STATUSES:
            errors.append(f"ContactStatus must be one of {', '.join(CONTACT_STATUSES)}")
        if existing and existing.data["ContactStatus"] == "ARCHIVED" and status == "ARCHIVED":
            changes = [k for k in element if k not in ("ContactID", "ContactStatus", "HasAttachments",
                                                       "HasValidationErrors", "Name")]
            if changes:
                raise ElementError(MSG_ARCHIVED_UPDATE)
        name = _text(element, "Name")
        if name is not None:
            data["Name"] = name.strip()
        if not data["Name"]:
            errors.append("The contact name must be specified.")
        for key in CONTACT_FIELDS:
            if key in element:
                value = _text(element, key)
                limit = LIMITS.get(key)
                if value is not None and limit and len(value) > limit:
                    errors.append(f"{key} must not be more than {limit} characters long.")
                if value:
                    data[key] = value
                else:
                    data.pop(key, None)
        if len(data["Name"]) > 255:
            errors.append("Name must not be more than 255 characters long.")
        for key in CONTACT_LISTS:
            if key in element:
                value = element[key]
                if not isinstance(value, list):
                    errors.append(f"{key} must be a list")
                else:
                    data[key] = [v for v in value if isinstance(v, dict)]
        if len(data.get("ContactPersons", [])) > 5:
            errors.append("A contact can have no more than 5 contact persons.")
        if status == "ACTIVE" and data["Name"] and self._active_name_taken(
                data["Name"], data["ContactID"]):
            errors.append(f"The contact name {data['Name']} is already assigned to another contact. "
                          "The contact name must be unique across all active contacts.")
        number = data.get("ContactNumber")
        if number and "ContactNumber" in element:
            other = self._find_contact_by_number(number)
            if other is not None and other.data["ContactID"] != data["ContactID"]:
                errors.append(f"The contact number {number} is already assigned to another contact.")
        if errors:
            raise ElementError(*errors)
        data["ContactStatus"] = status
        self._stamp(data)
        self.org.index_contact(existing.data if existing else None, data)
        self.org.contacts[data["ContactID"]] = Record(data, self.now)
        self.notify("CONTACT", "UPDATE" if existing else "CREATE", data["ContactID"], self.now)
        return data

    # ------------------------------------------------------------------ items

    def save_item(self, element: dict[str, Any], create_only: bool) -> dict[str, Any]:
        existing: Record | None = None
        code = _text(element, "Code")
        if not create_only:
            if element.get("ItemID"):
                existing = self.org.items.get(guid(element["ItemID"]) or "")
                if existing is None:
                    raise ElementError(MSG_NOT_FOUND)
            elif code:
                existing = next((r for r in self.org.items.values() if r.data["Code"] == code), None)
        data: dict[str, Any] = dict(existing.data) if existing else {
            "ItemID": str(uuid.uuid4()), "Code": "", "IsTrackedAsInventory": False,
            "IsSold": True, "IsPurchased": True, "PurchaseDetails": {}, "SalesDetails": {},
        }
        errors: list[str] = []
        if code is not None:
            data["Code"] = code.strip()
        if not data["Code"]:
            errors.append("Item code must be specified.")
        elif len(data["Code"]) > 30:
            errors.append("Item Code must not be more than 30 characters long.")
        elif any(r.data["Code"] == data["Code"] and r.data["ItemID"] != data["ItemID"]
                 for r in self.org.items.values()):
            errors.append(f"Price List Item with Code ''{data['Code']}'' already exists")
        for key, limit in (("Name", 50), ("Description", 4000), ("PurchaseDescription", 4000)):
            if key in element:
                value = _text(element, key) or ""
                if len(value) > limit:
                    errors.append(f"Item {key} must not be more than {limit} characters long.")
                data[key] = value
        for key in ("IsSold", "IsPurchased"):
            if key in element:
                data[key] = boolean(element[key])
        for key in ("SalesDetails", "PurchaseDetails"):
            if key in element:
                details = element[key]
                if not isinstance(details, dict):
                    errors.append(f"{key} must be an object")
                    continue
                out: dict[str, Any] = {}
                try:
                    if details.get("UnitPrice") not in (None, ""):
                        out["UnitPrice"] = dec(details["UnitPrice"], "UnitPrice").quantize(
                            Decimal("0.0001"), rounding=ROUND_HALF_UP)
                    if details.get("AccountCode"):
                        acct = str(details["AccountCode"])
                        if self.org.account(code=acct) is None:
                            errors.append(f"Account code '{acct}' is not a valid code for this "
                                          "document.")
                        out["AccountCode"] = acct
                    if details.get("TaxType"):
                        if self.org.tax_rate(str(details["TaxType"])) is None:
                            errors.append(f"The TaxType code '{details['TaxType']}' does not exist "
                                          "or cannot be used for this type of transaction.")
                        out["TaxType"] = str(details["TaxType"])
                except ElementError as exc:
                    errors.extend(exc.messages)
                data[key] = out
        if errors:
            raise ElementError(*errors)
        self._stamp(data)
        self.org.items[data["ItemID"]] = Record(data, self.now)
        return data

    def delete_item(self, item_id: str) -> None:
        rec = self.org.items.get(guid(item_id) or "")
        if rec is None:
            raise NotFound(item_id)
        del self.org.items[rec.data["ItemID"]]

    # ------------------------------------------------------------------ invoices

    def find_invoice(self, key: str) -> Record | None:
        gid = guid(key)
        if gid is not None and gid in self.org.invoices:
            return self.org.invoices[gid]
        for rec in self.org.invoices_numbered(key):
            if rec.data["Status"] != "DELETED":
                return rec
        return None

    def _resolve_contact(self, element: Any) -> tuple[dict[str, Any] | None, str | None]:
        """(existing contact data, or None and the Name of a contact to create)."""
        if not isinstance(element, dict):
            raise ElementError(MSG_IDENTIFY)
        found: Record | None = None
        if element.get("ContactID"):
            found = self.org.contacts.get(guid(element["ContactID"]) or "")
            if found is None:
                raise ElementError("The contact with the specified ContactID could not be found.")
        elif element.get("ContactNumber"):
            found = self._find_contact_by_number(str(element["ContactNumber"]))
            if found is None and not element.get("Name"):
                raise ElementError("The contact with the specified ContactNumber could not be "
                                   "found.")
        if found is None and element.get("Name"):
            key = str(element["Name"]).strip().lower()
            matches = self.org.contacts_named(key)
            found = next((r for r in matches if r.data["ContactStatus"] == "ACTIVE"),
                         matches[0] if matches else None)
            if found is None:
                return None, str(element["Name"]).strip()
        if found is None:
            raise ElementError(MSG_IDENTIFY)
        if found.data["ContactStatus"] != "ACTIVE":
            raise ElementError(MSG_ARCHIVED)
        return found.data, None

    def _lines(self, raw_lines: Any, lat: str, kind: str, old: list[dict[str, Any]],
               errors: list[str]) -> list[dict[str, Any]]:
        if not isinstance(raw_lines, list):
            errors.append("LineItems must be a list")
            return []
        old_ids = {line["LineItemID"] for line in old}
        out = []
        for raw in raw_lines:
            if not isinstance(raw, dict):
                errors.append("Each line item must be an object")
                continue
            try:
                out.append(self._line(raw, lat, kind, old_ids))
            except ElementError as exc:
                errors.extend(exc.messages)
        return out

    def _line(self, raw: dict[str, Any], lat: str, kind: str, old_ids: set[str]) -> dict[str, Any]:
        line: dict[str, Any] = {}
        line_id = guid(raw.get("LineItemID")) if raw.get("LineItemID") else None
        line["LineItemID"] = line_id if line_id in old_ids else str(uuid.uuid4())
        item = None
        if raw.get("ItemCode"):
            code = str(raw["ItemCode"])
            item = next((r.data for r in self.org.items.values() if r.data["Code"] == code), None)
            if item is None:
                raise ElementError(f"Item code '{code}' is not valid")
        sales = item.get("SalesDetails", {}) if item else {}
        description = raw.get("Description")
        if description in (None, "") and item is not None:
            description = item.get("Description") or item.get("Name")
        if description not in (None, ""):
            if len(str(description)) > 4000:
                raise ElementError("Description must not be more than 4000 characters long.")
            line["Description"] = str(description)
        quantity = dec(raw["Quantity"], "Quantity") if raw.get("Quantity") not in (None, "") \
            else Decimal(1)
        quantity = quantity.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)
        if raw.get("UnitAmount") not in (None, ""):
            unit = dec(raw["UnitAmount"], "UnitAmount")
        elif raw.get("LineAmount") not in (None, "") and quantity:
            unit = dec(raw["LineAmount"], "LineAmount") / quantity
        elif "UnitPrice" in sales:
            unit = Decimal(str(sales["UnitPrice"]))
        else:
            unit = Decimal(0)
        unit = unit.quantize(self.unit_quantum, rounding=ROUND_HALF_UP)
        gross = quantity * unit
        rate = raw.get("DiscountRate")
        discount_amount = raw.get("DiscountAmount")
        if (rate not in (None, "") or discount_amount not in (None, "")) and kind != "ACCREC":
            raise ElementError("Discounts are only supported on sales invoices (ACCREC).")
        if rate not in (None, ""):
            pct = dec(rate, "DiscountRate")
            if not Decimal(0) <= pct <= Decimal(100):
                raise ElementError("DiscountRate must be between 0 and 100.")
            line["DiscountRate"] = pct
            amount = money(gross * (Decimal(100) - pct) / Decimal(100))
        elif discount_amount not in (None, ""):
            off = money(dec(discount_amount, "DiscountAmount"))
            line["DiscountAmount"] = off
            amount = money(gross - off)
        else:
            amount = money(gross)
        if abs(amount) > Decimal("9999999999.99"):
            raise ElementError("LineAmount must not be more than 9,999,999,999.99.")
        account_code = raw.get("AccountCode") or sales.get("AccountCode")
        account = None
        if account_code:
            account = self.org.account(code=str(account_code))
            if account is None or account["Status"] != "ACTIVE":
                raise ElementError(f"Account code '{account_code}' has been removed as it does not "
                                   "match a recognised account.")
            line["AccountCode"] = account["Code"]
            line["AccountID"] = account["AccountID"]
        if raw.get("ItemCode"):
            line["ItemCode"] = str(raw["ItemCode"])
        tax_type = raw.get("TaxType") or sales.get("TaxType") or (account or {}).get("TaxType") \
            or (self.org.default_output_tax() if lat != "NoTax" else "NONE")
        if lat == "NoTax" and not raw.get("TaxType"):
            tax_type = "NONE"
        tax_rate = self.org.tax_rate(str(tax_type))
        if tax_rate is None or tax_rate["Status"] != "ACTIVE":
            raise ElementError(f"The TaxType code '{tax_type}' does not exist or cannot be used for "
                               "this type of transaction.")
        percent = Decimal(str(tax_rate["EffectiveRate"]))
        if lat == "NoTax":
            tax = Decimal("0.00")
        elif raw.get("TaxAmount") not in (None, ""):
            tax = money(dec(raw["TaxAmount"], "TaxAmount"))
        elif lat == "Inclusive":
            tax = money(amount * percent / (Decimal(100) + percent))
        else:
            tax = money(amount * percent / Decimal(100))
        line.update(Quantity=quantity, UnitAmount=unit, TaxType=str(tax_type), TaxAmount=tax,
                    LineAmount=amount, Tracking=raw.get("Tracking") if isinstance(
                        raw.get("Tracking"), list) else [])
        return line

    def save_invoice(self, element: dict[str, Any], create_only: bool) -> dict[str, Any]:
        existing: Record | None = None
        if not create_only:
            if element.get("InvoiceID"):
                existing = self.org.invoices.get(guid(element["InvoiceID"]) or "")
                if existing is None:
                    raise ElementError(MSG_NOT_FOUND)
            elif element.get("InvoiceNumber"):
                found = self.find_invoice(str(element["InvoiceNumber"]))
                if found is not None and found.data["Type"] == "ACCREC" and \
                        str(element.get("Type") or "ACCREC") == "ACCREC":
                    existing = found
        return self._update_invoice(existing, element) if existing else self._create_invoice(element)

    def _create_invoice(self, element: dict[str, Any]) -> dict[str, Any]:
        errors: list[str] = []
        kind = _text(element, "Type")
        if kind not in ("ACCREC", "ACCPAY"):
            raise ElementError("Invoice Type must be specified (ACCREC or ACCPAY)."
                               if not kind else f"Invoice Type '{kind}' is not valid.")
        status = (_text(element, "Status") or "DRAFT").upper()
        if status not in ("DRAFT", "SUBMITTED", "AUTHORISED"):
            raise ElementError("Invoice not of valid status for creation")
        contact, new_contact_name = self._resolve_contact(element.get("Contact"))
        lat = _text(element, "LineAmountTypes") or "Exclusive"
        if lat not in LINE_AMOUNT_TYPES:
            raise ElementError(f"LineAmountTypes must be one of {', '.join(LINE_AMOUNT_TYPES)}")
        data: dict[str, Any] = {
            "Type": kind, "InvoiceID": str(uuid.uuid4()), "Payments": [], "CreditNotes": [],
            "Prepayments": [], "Overpayments": [], "AmountPaid": Decimal("0.00"),
            "AmountCredited": Decimal("0.00"), "CurrencyRate": Decimal(1), "IsDiscounted": False,
            "HasAttachments": False, "HasErrors": False, "Status": status,
            "LineAmountTypes": lat, "SentToContact": False,
        }
        self._apply_header(data, element, errors, creating=True)
        data["LineItems"] = self._lines(element.get("LineItems", []), lat, kind, [], errors)
        if not data["LineItems"] and status != "DRAFT":
            errors.append("At least one line item must be specified")
        if errors:
            raise ElementError(*errors)
        if new_contact_name is not None:
            contact = self.save_contact({"Name": new_contact_name}, create_only=True)
        assert contact is not None
        data["Contact"] = {"ContactID": contact["ContactID"], "Name": contact["Name"]}
        self._number(data)
        self._totals(data)
        self._stamp_invoice(data)
        if kind == "ACCREC" and not contact.get("IsCustomer"):
            contact["IsCustomer"] = True  # Xero does not move UpdatedDateUTC for this
        self.org.index_invoice(None, data)
        self.org.invoices[data["InvoiceID"]] = Record(data, self.now)
        self.notify("INVOICE", "CREATE", data["InvoiceID"], self.now)
        return data

    def _apply_header(self, data: dict[str, Any], element: dict[str, Any], errors: list[str],
                      creating: bool) -> None:
        try:
            if element.get("Date") not in (None, ""):
                data["_date"] = parse_date(element["Date"])
            elif creating:
                data["_date"] = self.now.astimezone(UTC).date()
            if element.get("DueDate") not in (None, ""):
                data["_due"] = parse_date(element["DueDate"])
            elif creating:
                data["_due"] = data["_date"] + timedelta(days=30)
        except ValueError:
            errors.append("The date format is not valid; use YYYY-MM-DD.")
        for key, limit in (("Reference", 255), ("Url", 2000), ("InvoiceNumber", 255)):
            if key in element:
                value = _text(element, key) or ""
                if len(value) > limit:
                    errors.append(f"{key} must not be more than {limit} characters long.")
                elif value:
                    data[key] = value
                else:
                    data.pop(key, None)
        if "Reference" in data and data["Type"] != "ACCREC":
            errors.append("Reference can only be used on sales invoices (ACCREC).")
        currency = (_text(element, "CurrencyCode") or data.get("CurrencyCode")
                    or self.org.base_currency).upper()
        if currency not in self.org.currencies:
            errors.append(f"Organisation is not subscribed to currency {currency}")
        data["CurrencyCode"] = currency
        if "SentToContact" in element:
            data["SentToContact"] = boolean(element["SentToContact"])
        number = data.get("InvoiceNumber")
        if number and data["Type"] == "ACCREC" and any(
                r.data["InvoiceID"] != data["InvoiceID"] and r.data["Status"] != "DELETED"
                and r.data["Type"] == "ACCREC" for r in self.org.invoices_numbered(number)):
            errors.append("Invoice # must be unique.")

    def _number(self, data: dict[str, Any]) -> None:
        if data.get("InvoiceNumber") or data["Type"] != "ACCREC":
            return
        while True:
            candidate = f"INV-{self.org.next_invoice_number:04d}"
            self.org.next_invoice_number += 1
            if all(r.data["Status"] == "DELETED" for r in self.org.invoices_numbered(candidate)):
                data["InvoiceNumber"] = candidate
                return

    def _totals(self, data: dict[str, Any]) -> None:
        lines = data["LineItems"]
        line_sum = sum((line["LineAmount"] for line in lines), Decimal("0.00"))
        tax = sum((line["TaxAmount"] for line in lines), Decimal("0.00"))
        discount = sum((money(line["Quantity"] * line["UnitAmount"]) - line["LineAmount"]
                        for line in lines if "DiscountRate" in line or "DiscountAmount" in line),
                       Decimal("0.00"))
        if data["LineAmountTypes"] == "Inclusive":
            subtotal, total = line_sum - tax, line_sum
        else:
            subtotal, total = line_sum, line_sum + tax
        data.update(SubTotal=subtotal, TotalTax=tax, Total=total)
        if discount:
            data["TotalDiscount"] = discount
        else:
            data.pop("TotalDiscount", None)
        self._amount_due(data)

    @staticmethod
    def _amount_due(data: dict[str, Any]) -> None:
        if data["Status"] in ("VOIDED", "DELETED"):
            data["AmountDue"] = Decimal("0.00")
        else:
            data["AmountDue"] = data["Total"] - data["AmountPaid"] - data["AmountCredited"]

    def _stamp_invoice(self, data: dict[str, Any]) -> None:
        day: date = data.pop("_date", None) or parse_date(data["DateString"])
        due: date | None = data.pop("_due", None)
        data["Date"], data["DateString"] = ms_json_date(day), date_string(day)
        if due is not None:
            data["DueDate"], data["DueDateString"] = ms_json_date(due), date_string(due)
        data["UpdatedDateUTC"] = ms_json(self.now)
        data["UpdatedDateUTCString"] = iso_utc(self.now)

    def _update_invoice(self, existing: Record, element: dict[str, Any]) -> dict[str, Any]:
        old = existing.data
        data = dict(old)
        errors: list[str] = []
        current = old["Status"]
        status = (_text(element, "Status") or current).upper()
        if status not in INVOICE_STATUSES:
            raise ElementError(f"Status must be one of {', '.join(INVOICE_STATUSES)}")
        if current in ("VOIDED", "DELETED"):
            raise ElementError(MSG_NOT_VALID_STATUS)
        if status != current:
            allowed = {"DRAFT": {"SUBMITTED", "AUTHORISED", "DELETED"},
                       "SUBMITTED": {"DRAFT", "AUTHORISED", "DELETED"},
                       "AUTHORISED": {"VOIDED"}, "PAID": set()}[current]
            if status not in allowed:
                raise ElementError(MSG_NOT_VALID_STATUS)
            if status == "VOIDED" and (old["AmountPaid"] or old["AmountCredited"]):
                raise ElementError(MSG_HAS_PAYMENTS)
        if old["AmountPaid"] and ("LineItems" in element or "LineAmountTypes" in element
                                  or "Contact" in element):
            raise ElementError(MSG_HAS_PAYMENTS)
        if "Type" in element and element["Type"] != old["Type"]:
            raise ElementError("The Type of an invoice cannot be changed.")
        contact = None
        new_contact_name = None
        if "Contact" in element:
            contact, new_contact_name = self._resolve_contact(element["Contact"])
        lat = _text(element, "LineAmountTypes") or old["LineAmountTypes"]
        if lat not in LINE_AMOUNT_TYPES:
            raise ElementError(f"LineAmountTypes must be one of {', '.join(LINE_AMOUNT_TYPES)}")
        data["LineAmountTypes"] = lat
        data["Status"] = status
        self._apply_header(data, element, errors, creating=False)
        if "LineItems" in element or "LineAmountTypes" in element:
            raw = element.get("LineItems", old["LineItems"])
            data["LineItems"] = self._lines(raw, lat, old["Type"], old["LineItems"], errors)
        if errors:
            raise ElementError(*errors)
        if new_contact_name is not None:
            contact = self.save_contact({"Name": new_contact_name}, create_only=True)
        if contact is not None:
            data["Contact"] = {"ContactID": contact["ContactID"], "Name": contact["Name"]}
        self._totals(data)
        self._stamp_invoice(data)
        self.org.index_invoice(old, data)
        existing.data, existing.updated = data, self.now
        self.notify("INVOICE", "UPDATE", data["InvoiceID"], self.now)
        return data

    def invoice_view(self, data: dict[str, Any], with_lines: bool) -> dict[str, Any]:
        view = dict(data)
        contact = self.org.contacts.get(data["Contact"]["ContactID"])
        if contact is not None:
            view["Contact"] = {"ContactID": contact.data["ContactID"], "Name": contact.data["Name"],
                               "ContactStatus": contact.data["ContactStatus"]}
        if not with_lines:
            view.pop("LineItems", None)
        return view

    # ------------------------------------------------------------------ payments

    def create_payment(self, element: dict[str, Any]) -> dict[str, Any]:
        errors: list[str] = []
        ref = element.get("Invoice")
        invoice: Record | None = None
        if isinstance(ref, dict) and (ref.get("InvoiceID") or ref.get("InvoiceNumber")):
            invoice = self.find_invoice(str(ref.get("InvoiceID") or ref.get("InvoiceNumber")))
        if invoice is None:
            raise ElementError("You must specify an Invoice, CreditNote, Prepayment or Overpayment "
                               "that exists in the organisation.")
        acct_ref = element.get("Account")
        account = None
        if isinstance(acct_ref, dict):
            account = self.org.account(code=str(acct_ref["Code"])) if acct_ref.get("Code") else \
                self.org.account(account_id=str(acct_ref.get("AccountID") or ""))
        if account is None:
            errors.append("Account could not be found")
        elif account["Type"] != "BANK" and not account["EnablePaymentsToAccount"]:
            errors.append("Payments can only be made to bank accounts or accounts with payments "
                          "enabled.")
        inv = invoice.data
        if inv["Status"] != "AUTHORISED":
            errors.append("Payments can only be made against Authorised documents.")
        amount = money(dec(element.get("Amount", "0"), "Amount"))
        if amount <= 0:
            errors.append("Payment amount must be greater than zero.")
        elif inv["Status"] == "AUTHORISED" and amount > inv["AmountDue"]:
            errors.append(MSG_OVERPAYMENT)
        try:
            day = parse_date(element["Date"]) if element.get("Date") else self.now.date()
        except ValueError:
            errors.append("The date format is not valid; use YYYY-MM-DD.")
            day = self.now.date()
        if errors:
            raise ElementError(*errors)
        assert account is not None
        payment: dict[str, Any] = {
            "PaymentID": str(uuid.uuid4()), "Date": ms_json_date(day), "Amount": amount,
            "BankAmount": amount, "Reference": str(element.get("Reference") or ""),
            "CurrencyRate": Decimal(1), "PaymentType": "ACCRECPAYMENT" if inv["Type"] == "ACCREC"
            else "ACCPAYPAYMENT", "Status": "AUTHORISED", "IsReconciled": boolean(
                element.get("IsReconciled", False)), "HasAccount": True, "HasValidationErrors": False,
            "Account": {"AccountID": account["AccountID"], "Code": account["Code"]},
            "Invoice": {"InvoiceID": inv["InvoiceID"], "InvoiceNumber": inv.get("InvoiceNumber", ""),
                        "Type": inv["Type"], "Contact": dict(inv["Contact"]),
                        "CurrencyCode": inv["CurrencyCode"], "IsDiscounted": False,
                        "HasErrors": False, "Payments": [], "CreditNotes": [],
                        "Prepayments": [], "Overpayments": [], "LineItems": []},
        }
        self._stamp(payment)
        self.org.payments[payment["PaymentID"]] = Record(payment, self.now)
        self._apply_payments(invoice, day)
        return payment

    def delete_payment(self, payment_id: str, element: dict[str, Any]) -> dict[str, Any]:
        rec = self.org.payments.get(guid(payment_id) or "")
        if rec is None:
            raise NotFound(payment_id)
        extra = [k for k in element if k not in ("Status", "PaymentID")]
        if extra or str(element.get("Status", "")).upper() != "DELETED":
            raise ElementError(MSG_ONLY_STATUS)
        if rec.data["Status"] == "DELETED":
            raise ElementError("Payment has already been deleted.")
        data = dict(rec.data, Status="DELETED")
        self._stamp(data)
        rec.data, rec.updated = data, self.now
        invoice = self.org.invoices[data["Invoice"]["InvoiceID"]]
        self._apply_payments(invoice, None)
        return data

    def _apply_payments(self, invoice: Record, paid_on: date | None) -> None:
        data = dict(invoice.data)
        live = [p.data for p in self.org.payments.values()
                if p.data["Invoice"]["InvoiceID"] == data["InvoiceID"] and p.data["Status"] != "DELETED"]
        data["Payments"] = [{"PaymentID": p["PaymentID"], "Date": p["Date"], "Amount": p["Amount"],
                             "Reference": p["Reference"], "CurrencyRate": p["CurrencyRate"],
                             "HasAccount": False, "HasValidationErrors": False} for p in live]
        data["AmountPaid"] = sum((p["Amount"] for p in live), Decimal("0.00"))
        data["AmountDue"] = data["Total"] - data["AmountPaid"] - data["AmountCredited"]
        if data["AmountDue"] <= 0 and data["Status"] == "AUTHORISED":
            data["Status"] = "PAID"
            data["FullyPaidOnDate"] = ms_json_date(paid_on or self.now.date())
        elif data["AmountDue"] > 0 and data["Status"] == "PAID":
            data["Status"] = "AUTHORISED"
            data.pop("FullyPaidOnDate", None)
        data["UpdatedDateUTC"] = ms_json(self.now)
        data["UpdatedDateUTCString"] = iso_utc(self.now)
        invoice.data, invoice.updated = data, self.now
        self.notify("INVOICE", "UPDATE", data["InvoiceID"], self.now)
