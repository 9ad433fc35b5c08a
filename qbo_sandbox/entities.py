"""Per-entity rules: what a write must contain, what QBO fills in, and what it computes.

``prepare(...)`` turns the writable fields of a request (already merged with the stored entity
for sparse updates) into the full entity QBO would store, or raises a :class:`QBOError`.
Id, SyncToken, MetaData, domain and sparse are added by :mod:`qbo_sandbox.operations`.
Money is ``Decimal`` throughout, rounded half-up to cents.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from qbo_sandbox import errors
from qbo_sandbox.companies import Company, Record, TaxRateInfo
from qbo_sandbox.timefmt import local_date, parse_date

CENT = Decimal("0.01")
ZERO = Decimal("0")
HUNDRED = Decimal("100")

#: Keys a client may send that QBO computes or owns (ignored on input).
ENVELOPE_KEYS = frozenset({"Id", "SyncToken", "MetaData", "domain", "sparse", "status"})
READ_ONLY = {
    "Customer": {"FullyQualifiedName", "Level", "BalanceWithJobs", "IsProject", "V4IDPseudonym"},
    "Vendor": {"V4IDPseudonym", "Balance"},
    "Employee": {"V4IDPseudonym"},
    "Item": {"FullyQualifiedName", "Level"},
    "Account": {"FullyQualifiedName", "CurrentBalance", "CurrentBalanceWithSubAccounts",
                "Classification", "SubAccount"},
    "Invoice": {"TotalAmt", "Balance", "HomeBalance", "HomeTotalAmt", "InvoiceLink",
                "DeliveryInfo", "RecurDataRef", "TaxExemptionRef"},
    "SalesReceipt": {"TotalAmt", "Balance", "HomeBalance", "HomeTotalAmt", "DeliveryInfo",
                     "RecurDataRef"},
    "CreditMemo": {"TotalAmt", "Balance", "RemainingCredit", "HomeBalance", "HomeTotalAmt",
                   "DeliveryInfo"},
    "Payment": {"UnappliedAmt"},
}

#: Properties a query may filter or sort on (unknown ones answer 4001).
COMMON_FIELDS = {"Id", "SyncToken", "MetaData", "domain", "sparse"}
PERSON_FIELDS = {
    "DisplayName", "Title", "GivenName", "MiddleName", "FamilyName", "Suffix", "CompanyName",
    "PrintOnCheckName", "PrimaryEmailAddr", "PrimaryPhone", "Mobile", "Fax", "AlternatePhone",
    "WebAddr", "BillAddr", "ShipAddr", "OtherAddr", "Active", "Notes", "CurrencyRef", "Balance",
    "AcctNum", "TaxIdentifier",
}
TXN_FIELDS = {
    "DocNumber", "TxnDate", "CustomerRef", "Line", "TotalAmt", "Balance", "CurrencyRef",
    "ExchangeRate", "PrivateNote", "TxnTaxDetail", "BillAddr", "ShipAddr", "BillEmail",
    "EmailStatus", "PrintStatus", "CustomerMemo", "DepartmentRef", "ClassRef", "LinkedTxn",
    "CustomField", "ApplyTaxAfterDiscount", "GlobalTaxCalculation", "HomeBalance", "HomeTotalAmt",
    "SalesTermRef", "ProjectRef", "TxnSource",
}
QUERY_FIELDS: dict[str, set[str]] = {
    "Customer": PERSON_FIELDS | {"FullyQualifiedName", "Job", "ParentRef", "Level", "BalanceWithJobs",
                                 "Taxable", "DefaultTaxCodeRef", "PreferredDeliveryMethod",
                                 "SalesTermRef", "PaymentMethodRef", "BillWithParent", "ResaleNum",
                                 "CustomerTypeRef", "IsProject", "OpenBalanceDate"},
    "Vendor": PERSON_FIELDS | {"Vendor1099", "TermRef", "APAccountRef"},
    "Employee": PERSON_FIELDS | {"EmployeeNumber", "SSN", "BillableTime", "HiredDate",
                                 "ReleasedDate", "BirthDate", "Gender"},
    "Item": {"Name", "Sku", "Type", "FullyQualifiedName", "Active", "Description", "UnitPrice",
             "IncomeAccountRef", "ExpenseAccountRef", "AssetAccountRef", "Taxable",
             "SalesTaxCodeRef", "TrackQtyOnHand", "QtyOnHand", "ParentRef", "SubItem",
             "PurchaseCost", "PurchaseDesc", "Level"},
    "Account": {"Name", "AccountType", "AccountSubType", "Classification", "Active",
                "FullyQualifiedName", "AcctNum", "Description", "CurrentBalance",
                "CurrentBalanceWithSubAccounts", "SubAccount", "ParentRef", "CurrencyRef"},
    "Invoice": TXN_FIELDS | {"DueDate", "ShipDate", "Deposit", "DeliveryInfo", "AllowOnlinePayment",
                             "AllowOnlineCreditCardPayment", "AllowOnlineACHPayment",
                             "AllowIPNPayment", "DepositToAccountRef", "TrackingNum"},
    "SalesReceipt": TXN_FIELDS | {"DepositToAccountRef", "PaymentMethodRef", "PaymentRefNum",
                                  "ShipDate", "TrackingNum"},
    "CreditMemo": TXN_FIELDS | {"RemainingCredit"},
    "Payment": {"TxnDate", "CustomerRef", "TotalAmt", "UnappliedAmt", "Line", "CurrencyRef",
                "ExchangeRate", "PrivateNote", "DepositToAccountRef", "PaymentMethodRef",
                "PaymentRefNum", "ProcessPayment", "ARAccountRef", "TxnSource"},
    "TaxCode": {"Name", "Description", "Active", "Taxable", "TaxGroup", "Hidden"},
    "TaxRate": {"Name", "Description", "Active", "RateValue", "AgencyRef", "SpecialTaxType"},
    "CompanyInfo": {"CompanyName", "LegalName", "Country"},
    "Preferences": set(),
}
for _fields in QUERY_FIELDS.values():
    _fields |= COMMON_FIELDS

PERSON_LIMITS = {"DisplayName": 500, "Title": 16, "GivenName": 100, "MiddleName": 100,
                 "FamilyName": 100, "Suffix": 16, "CompanyName": 100, "PrintOnCheckName": 110,
                 "Notes": 2000, "ResaleNum": 16}
ADDRESS_LIMITS = {"Line1": 500, "Line2": 500, "Line3": 500, "Line4": 500, "Line5": 500,
                  "City": 255, "Country": 255, "CountrySubDivisionCode": 255, "PostalCode": 30}
ITEM_TYPES = ("Service", "NonInventory", "Inventory", "Category", "Group")
LINE_TYPES = ("SalesItemLineDetail", "GroupLineDetail", "DescriptionOnly", "DiscountLineDetail",
              "SubTotalLineDetail")
SPECIAL_ITEMS = ("SHIPPING_ITEM_ID", "GRATUITY_ITEM_ID")
GLOBAL_TAX = ("TaxExcluded", "TaxInclusive", "NotApplicable")

ACCOUNT_TYPES: dict[str, tuple[str, str]] = {
    "Bank": ("Asset", "Checking"),
    "Accounts Receivable": ("Asset", "AccountsReceivable"),
    "Other Current Asset": ("Asset", "OtherCurrentAssets"),
    "Fixed Asset": ("Asset", "MachineryAndEquipment"),
    "Other Asset": ("Asset", "OtherLongTermAssets"),
    "Accounts Payable": ("Liability", "AccountsPayable"),
    "Credit Card": ("Liability", "CreditCard"),
    "Other Current Liability": ("Liability", "OtherCurrentLiabilities"),
    "Long Term Liability": ("Liability", "OtherLongTermLiabilities"),
    "Equity": ("Equity", "OpeningBalanceEquity"),
    "Income": ("Revenue", "SalesOfProductIncome"),
    "Cost of Goods Sold": ("Expense", "SuppliesMaterialsCogs"),
    "Expense": ("Expense", "OtherMiscellaneousServiceCost"),
    "Other Income": ("Revenue", "OtherMiscellaneousIncome"),
    "Other Expense": ("Expense", "OtherMiscellaneousExpense"),
    "Non-Posting": ("Asset", "OtherNonPosting"),
}
SUBTYPE_TO_TYPE = {
    "Checking": "Bank", "Savings": "Bank", "AccountsReceivable": "Accounts Receivable",
    "UndepositedFunds": "Other Current Asset", "OtherCurrentAssets": "Other Current Asset",
    "Inventory": "Other Current Asset", "AccountsPayable": "Accounts Payable",
    "CreditCard": "Credit Card", "SalesOfProductIncome": "Income", "ServiceFeeIncome": "Income",
    "DiscountsRefundsGiven": "Income", "OtherPrimaryIncome": "Income",
    "NonProfitIncome": "Income", "UnappliedCashPaymentIncome": "Income",
    "OpeningBalanceEquity": "Equity", "SuppliesMaterialsCogs": "Cost of Goods Sold",
    "OtherMiscellaneousServiceCost": "Expense", "OtherMiscellaneousIncome": "Other Income",
    "OtherMiscellaneousExpense": "Other Expense",
}
DEFAULT_TERM_DAYS = {"1": 0, "2": 15, "3": 30, "4": 60}


@dataclass
class WriteContext:
    """What a write needs besides its body."""

    company: Company
    now: datetime
    allow_duplicate_doc_number: bool = False

    @property
    def today(self) -> date:
        return local_date(self.now, self.company.tz)


@dataclass
class Prepared:
    """A validated entity plus what the write must update around it."""

    data: dict[str, Any]
    name: str | None = None  # name-list entities: the claimed name
    customer_id: str | None = None  # transactions
    doc_number: str | None = None
    txn_date: date | None = None
    applications: dict[tuple[str, str], Decimal] = field(default_factory=dict)
    opening_balance: Decimal | None = None


# ---------------------------------------------------------------------------- small helpers


def money(value: Any, element: str) -> Decimal:
    """A JSON number (or numeric string) as cents-rounded Decimal."""
    if isinstance(value, bool) or value is None:
        raise errors.bad_request_body(f"Property Name:{element} specified is unsupported or invalid")
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation:
        raise errors.bad_request_body(
            f"Property Name:{element} specified is unsupported or invalid"
        ) from None
    if not amount.is_finite():
        raise errors.bad_request_body(f"Property Name:{element} specified is unsupported or invalid")
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def number(value: Any, element: str) -> Decimal:
    """A quantity or rate: Decimal, not rounded to cents."""
    try:
        result = value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation:
        raise errors.bad_request_body(
            f"Property Name:{element} specified is unsupported or invalid"
        ) from None
    if isinstance(value, bool) or not result.is_finite():
        raise errors.bad_request_body(f"Property Name:{element} specified is unsupported or invalid")
    return result


def rounded(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def as_bool(value: Any, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


def ref_id(data: dict[str, Any], key: str) -> str | None:
    ref = data.get(key)
    if isinstance(ref, dict):
        value = ref.get("value")
        return None if value in (None, "") else str(value)
    if isinstance(ref, (str, int)) and ref != "":
        return str(ref)
    return None


def clean(value: Any) -> Any:
    """Drop ``None`` and ``""`` values (python-quickbooks sends both for unset fields)."""
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items() if v is not None and v != ""}
    if isinstance(value, list):
        return [clean(v) for v in value]
    return value


def writable(entity: str, body: dict[str, Any]) -> dict[str, Any]:
    """The request body minus envelope and read-only keys, cleaned."""
    drop = ENVELOPE_KEYS | READ_ONLY.get(entity, set())
    return {k: clean(v) for k, v in body.items() if k not in drop and v is not None and v != ""}


def check_lengths(data: dict[str, Any], limits: dict[str, int], prefix: str = "") -> None:
    for key, maximum in limits.items():
        value = data.get(key)
        if isinstance(value, str) and len(value) > maximum:
            raise errors.too_long(prefix + key, maximum, len(value))


def check_email(data: dict[str, Any], key: str) -> None:
    holder = data.get(key)
    if not isinstance(holder, dict):
        return
    address = holder.get("Address")
    if address is None:
        return
    text = str(address)
    if len(text) > 100:
        raise errors.too_long(f"{key}.Address", 100, len(text))
    local, at, domain = text.partition("@")
    if not at or not local or "." not in domain or " " in text:
        raise errors.invalid_email(f"{key}.Address", text)


def address(company: Company, value: Any, element: str) -> dict[str, Any] | None:
    if not isinstance(value, dict) or not value:
        return None
    out = dict(value)
    check_lengths(out, ADDRESS_LIMITS, element + ".")
    out["Id"] = str(out.get("Id") or company.new_address_id())
    out.setdefault("Lat", "INVALID")
    out.setdefault("Long", "INVALID")
    return out


def active_record(company: Company, entity: str, ref: str | None, what: str) -> Record:
    """The referenced name-list record, which must exist and be active (else 2500)."""
    record = company.get(entity, ref) if ref else None
    if record is None:
        raise errors.invalid_reference(what, str(ref))
    if record.data.get("Active") is False:
        name = record.data.get("DisplayName") or record.data.get("Name") or ref
        raise errors.invalid_reference(what, str(ref), str(name))
    return record


def parse_txn_date(value: Any, element: str) -> date:
    try:
        return parse_date(str(value))
    except ValueError:
        raise errors.QBOError(
            2170, "Invalid Date", f"Invalid Date : {value} is not a valid date (YYYY-MM-DD)",
            element=element,
        ) from None


# ---------------------------------------------------------------------------- name lists

SUFFIX_DELETED = " (deleted)"


def _display_name(data: dict[str, Any]) -> str:
    name = data.get("DisplayName")
    if isinstance(name, str) and name.strip():
        return name
    parts = [data.get(k) for k in ("Title", "GivenName", "MiddleName", "FamilyName", "Suffix")]
    return " ".join(str(p) for p in parts if p)


def _unique_name(ctx: WriteContext, entity: str, entity_id: str, name: str, what: str) -> None:
    owner = ctx.company.name_owner(entity, name)
    if owner is not None and owner != f"{entity}:{entity_id}":
        raise errors.duplicate_name(what)


def person(ctx: WriteContext, entity: str, entity_id: str, data: dict[str, Any],
           existing: Record | None) -> Prepared:
    """Customer, Vendor, Employee: one DisplayName namespace; inactive customers get "(deleted)"."""
    company = ctx.company
    check_lengths(data, {k: v for k, v in PERSON_LIMITS.items() if k != "DisplayName"})
    check_email(data, "PrimaryEmailAddr")
    for key in ("PrimaryPhone", "Mobile", "AlternatePhone", "Fax"):
        phone = data.get(key)
        if isinstance(phone, dict):
            check_lengths(phone, {"FreeFormNumber": 30}, key + ".")
    base = _display_name(data).removesuffix(SUFFIX_DELETED).strip()
    if not base:
        raise errors.required_missing("DisplayName")
    if len(base) > 500:
        raise errors.too_long("DisplayName", 500, len(base))
    for bad in (":", "\t", "\n"):
        if bad in base:
            raise errors.QBOError(
                2170, "Invalid Enumeration",
                "Invalid Enumeration : DisplayName cannot contain a colon, tab or new line",
                element="DisplayName",
            )
    active = as_bool(data.get("Active"), True)
    out = dict(data)
    out["Active"] = active
    display = base
    if entity == "Customer" and not active:
        display = base + SUFFIX_DELETED
    if active:
        _unique_name(ctx, entity, entity_id, display, "customer, vendor or employee")
    out["DisplayName"] = display
    out.setdefault("PrintOnCheckName", data.get("CompanyName") or base)
    for key in ("BillAddr", "ShipAddr", "OtherAddr"):
        if key in out:
            addr = address(company, out[key], key)
            if addr is None:
                out.pop(key)
            else:
                out[key] = addr
    if existing is not None and "CurrencyRef" in existing.data:
        out["CurrencyRef"] = existing.data["CurrencyRef"]  # write-once
    else:
        currency = ref_id(out, "CurrencyRef") or company.home_currency
        if currency != company.home_currency and not company.multicurrency:
            raise errors.business("Multicurrency is not enabled for this company.")
        out["CurrencyRef"] = (company.currency_ref if currency == company.home_currency
                              else {"value": currency, "name": currency})
    prepared = Prepared(out, name=display)
    if entity == "Customer":
        _customer_fields(ctx, entity_id, out, existing, prepared)
    elif entity == "Vendor":
        out.setdefault("Vendor1099", False)
        out["Balance"] = ZERO
    else:
        out.setdefault("BillableTime", False)
    return prepared


def _customer_fields(ctx: WriteContext, entity_id: str, out: dict[str, Any],
                     existing: Record | None, prepared: Prepared) -> None:
    company = ctx.company
    out.setdefault("PreferredDeliveryMethod", "Print")
    if out["PreferredDeliveryMethod"] not in ("Print", "Email", "None"):
        raise errors.invalid_enum("PreferredDeliveryMethod", out["PreferredDeliveryMethod"])
    out["Taxable"] = as_bool(out.get("Taxable"), True)
    out["BillWithParent"] = as_bool(out.get("BillWithParent"), False)
    if company.is_us and company.default_tax_code and "DefaultTaxCodeRef" not in out:
        out["DefaultTaxCodeRef"] = {"value": company.default_tax_code}
    parent_id = ref_id(out, "ParentRef")
    fqn = out["DisplayName"]
    if parent_id:
        if parent_id == entity_id:
            raise errors.business("A customer cannot be its own parent.")
        parent = active_record(company, "Customer", parent_id, "Customer")
        level = int(parent.data.get("Level", 0)) + 1
        if level > 4:
            raise errors.business("Sub-customers can be nested at most 4 levels deep.")
        out["Job"] = True
        out["Level"] = level
        out["ParentRef"] = {"value": parent_id, "name": parent.data["DisplayName"]}
        fqn = f"{parent.data['FullyQualifiedName']}:{out['DisplayName']}"
    else:
        out["Job"] = False
        out.pop("Level", None)
    out["FullyQualifiedName"] = fqn
    if existing is None:
        prepared.opening_balance = money(out.get("Balance", 0), "Balance")
    out.pop("Balance", None)
    out.pop("BalanceWithJobs", None)


def item(ctx: WriteContext, entity_id: str, data: dict[str, Any], existing: Record | None) -> Prepared:
    company = ctx.company
    name = str(data.get("Name") or "").removesuffix(SUFFIX_DELETED).strip()
    if not name:
        raise errors.required_missing("Name")
    check_lengths({**data, "Name": name}, {"Name": 100, "Sku": 100, "Description": 4000,
                                            "PurchaseDesc": 4000})
    if ":" in name:
        raise errors.invalid_enum("Name", name)
    item_type = data.get("Type")
    if not item_type:
        raise errors.required_missing("Type")
    if item_type not in ITEM_TYPES:
        raise errors.invalid_enum("Type", item_type)
    active = as_bool(data.get("Active"), True)
    if active:
        _unique_name(ctx, "Item", entity_id, name, "product or service")
    out = dict(data)
    out["Name"] = name
    out["FullyQualifiedName"] = name
    out["Active"] = active
    out["Taxable"] = as_bool(out.get("Taxable"), False)
    out["UnitPrice"] = number(out.get("UnitPrice", 0), "UnitPrice")
    out.setdefault("PurchaseCost", ZERO)
    out["TrackQtyOnHand"] = item_type == "Inventory" or as_bool(out.get("TrackQtyOnHand"), False)
    for key, required in (("IncomeAccountRef", item_type in ("Service", "Inventory", "NonInventory")),
                          ("ExpenseAccountRef", item_type == "Inventory"),
                          ("AssetAccountRef", item_type == "Inventory")):
        account_id = ref_id(out, key)
        if account_id is None:
            if required:
                raise errors.required_missing(key)
            continue
        account = active_record(company, "Account", account_id, "Account")
        out[key] = {"value": account_id, "name": account.data["Name"]}
    if item_type == "Inventory":
        if "QtyOnHand" not in out:
            raise errors.required_missing("QtyOnHand")
        if "InvStartDate" not in out:
            raise errors.required_missing("InvStartDate")
        out["QtyOnHand"] = number(out["QtyOnHand"], "QtyOnHand")
    tax_code = ref_id(out, "SalesTaxCodeRef")
    if tax_code and tax_code not in company.tax_codes and tax_code not in ("TAX", "NON"):
        raise errors.invalid_reference("TaxCode", tax_code)
    return Prepared(out, name=name)


def account(ctx: WriteContext, entity_id: str, data: dict[str, Any],
            existing: Record | None) -> Prepared:
    company = ctx.company
    name = str(data.get("Name") or "").strip()
    if not name:
        raise errors.required_missing("Name")
    check_lengths({**data, "Name": name}, {"Name": 100, "Description": 100})
    if '"' in name or ":" in name:
        raise errors.invalid_enum("Name", name)
    acct_type = data.get("AccountType")
    sub_type = data.get("AccountSubType")
    if not acct_type and not sub_type:
        raise errors.required_missing("AccountType")
    if not acct_type:
        acct_type = SUBTYPE_TO_TYPE.get(str(sub_type))
        if acct_type is None:
            raise errors.invalid_enum("AccountSubType", sub_type)
    if acct_type not in ACCOUNT_TYPES:
        raise errors.invalid_enum("AccountType", acct_type)
    classification, default_sub = ACCOUNT_TYPES[acct_type]
    acct_num = data.get("AcctNum")
    if acct_num is not None:
        limit = 20 if company.country in ("AU", "CA") else 7
        check_lengths({"AcctNum": str(acct_num)}, {"AcctNum": limit})
    active = as_bool(data.get("Active"), True)
    if active:
        _unique_name(ctx, "Account", entity_id, name, "account")
    out = dict(data)
    out.update(
        Name=name,
        FullyQualifiedName=name,
        AccountType=acct_type,
        AccountSubType=sub_type or default_sub,
        Classification=classification,
        Active=active,
        CurrentBalance=ZERO,
        CurrentBalanceWithSubAccounts=ZERO,
    )
    parent = ref_id(out, "ParentRef")
    out["SubAccount"] = parent is not None
    if parent is not None:
        parent_rec = active_record(company, "Account", parent, "Account")
        out["FullyQualifiedName"] = f"{parent_rec.data['FullyQualifiedName']}:{name}"
    if existing is not None and "CurrencyRef" in existing.data:
        out["CurrencyRef"] = existing.data["CurrencyRef"]
    else:
        out["CurrencyRef"] = company.currency_ref
    return Prepared(out, name=name)


# ---------------------------------------------------------------------------- sales forms


@dataclass
class _TaxLine:
    code: str | None
    net: Decimal


def _line_tax_code(company: Company, detail: dict[str, Any]) -> str:
    code = ref_id(detail, "TaxCodeRef")
    if company.is_us:
        code = code or "NON"
        if code not in ("TAX", "NON"):
            raise errors.invalid_reference("TaxCode", code)
        return code
    code = code or company.default_tax_code
    if code not in company.tax_codes:
        raise errors.invalid_reference("TaxCode", code)
    return code


def _prepare_lines(ctx: WriteContext, lines: Any, existing: Record | None,
                   inclusive: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]],
                                             list[dict[str, Any]], list[_TaxLine], Decimal, Decimal]:
    """Validate lines; returns (item lines, discount lines, special lines, taxable, subtotal, shipping)."""
    company = ctx.company
    if not isinstance(lines, list) or not lines:
        raise errors.required_missing("Line")
    used_ids = {str(line.get("Id")) for line in (existing.data.get("Line", []) if existing else [])
                if isinstance(line, dict) and line.get("Id")}
    next_id = max((int(i) for i in used_ids if i.isdigit()), default=0) + 1
    kept: list[dict[str, Any]] = []
    discounts: list[dict[str, Any]] = []
    specials: list[dict[str, Any]] = []
    taxable: list[_TaxLine] = []
    subtotal = ZERO
    shipping = ZERO
    position = 0
    for raw in lines:
        if not isinstance(raw, dict):
            raise errors.bad_request_body("Property Name:Line specified is unsupported or invalid")
        line = copy.deepcopy(raw)
        line.pop("LineEx", None)
        detail_type = line.get("DetailType")
        if not detail_type:
            raise errors.required_missing("Line.DetailType")
        if detail_type not in LINE_TYPES:
            raise errors.invalid_enum("Line.DetailType", detail_type)
        if detail_type == "SubTotalLineDetail":
            continue  # QBO computes the subtotal line itself
        check_lengths(line, {"Description": 4000}, "Line.")
        line_id = str(line.get("Id") or "")
        if line_id not in used_ids or not line_id.isdigit() or int(line_id) <= 0:
            line_id = str(next_id)
            next_id += 1
        if detail_type == "DiscountLineDetail":
            line.pop("Id", None)
            discounts.append(line)
            continue
        position += 1
        line["Id"] = line_id
        if not line.get("LineNum"):
            line["LineNum"] = position
        if detail_type == "DescriptionOnly":
            line["Amount"] = money(line.get("Amount", 0), "Line.Amount")
            line.setdefault("DescriptionLineDetail", line.pop("DescriptionOnly", {}) or {})
            kept.append(line)
            continue
        if detail_type == "GroupLineDetail":
            line["Amount"] = money(line.get("Amount", 0), "Line.Amount")
            subtotal += line["Amount"]
            kept.append(line)
            continue
        detail = dict(line.get("SalesItemLineDetail") or {})
        item_id = ref_id(detail, "ItemRef") or "1"
        qty = number(detail["Qty"], "Line.SalesItemLineDetail.Qty") if "Qty" in detail else None
        price = (number(detail["UnitPrice"], "Line.SalesItemLineDetail.UnitPrice")
                 if "UnitPrice" in detail else None)
        if "Amount" in line:
            amount = money(line["Amount"], "Line.Amount")
        elif qty is not None and price is not None:
            amount = rounded(qty * price)
        else:
            raise errors.required_missing("Line.Amount")
        if qty and price and rounded(qty * price) != amount:
            raise errors.QBOError(
                6070, "Amount is not equal to UnitPrice * Qty",
                f"Amount is not equal to UnitPrice * Qty. Supplied value:{amount}",
                element="Line.Amount",
            )
        if inclusive and detail.get("TaxInclusiveAmt") not in (None, 0, "0"):
            amount = money(detail["TaxInclusiveAmt"], "Line.SalesItemLineDetail.TaxInclusiveAmt")
        line["Amount"] = amount
        if qty is not None:
            detail["Qty"] = qty
        if price is not None:
            detail["UnitPrice"] = price
        if item_id in SPECIAL_ITEMS:
            detail["ItemRef"] = {"value": item_id}
            line["SalesItemLineDetail"] = detail
            line.pop("Id", None)
            line.pop("LineNum", None)
            position -= 1
            shipping += amount
            specials.append(line)
            continue
        item_rec = active_record(company, "Item", item_id, "Item")
        detail["ItemRef"] = {"name": item_rec.data["Name"], "value": item_id}
        code = _line_tax_code(company, detail)
        detail["TaxCodeRef"] = {"value": code}
        line["SalesItemLineDetail"] = detail
        subtotal += amount
        taxable.append(_TaxLine(code, amount))
        kept.append(line)
    if not kept and not specials:
        raise errors.required_missing("Line")
    return kept, discounts, specials, taxable, subtotal, shipping


def _tax(ctx: WriteContext, data: dict[str, Any], customer: Record, taxable: list[_TaxLine],
         discount_ratio: Decimal, mode: str) -> tuple[dict[str, Any], Decimal, Decimal]:
    """Returns (TxnTaxDetail, total tax, amount to subtract from gross lines when inclusive)."""
    company = ctx.company
    detail: dict[str, Any] = {}
    if company.is_us:
        group = ref_id(data.get("TxnTaxDetail") or {}, "TxnTaxCodeRef")
        if group is None and customer.data.get("Taxable") and any(t.code == "TAX" for t in taxable):
            group = ref_id(customer.data, "DefaultTaxCodeRef")
        if group is None:
            return {"TotalTax": ZERO}, ZERO, ZERO
        if group not in company.tax_codes:
            raise errors.invalid_reference("TaxCode", group)
        base = sum((t.net for t in taxable if t.code == "TAX"), ZERO) * discount_ratio
        lines, total = _tax_lines(company.tax_codes[group], rounded(base))
        detail = {"TxnTaxCodeRef": {"value": group}, "TotalTax": total, "TaxLine": lines}
        return detail, total, ZERO
    if mode == "NotApplicable":
        return {"TotalTax": ZERO}, ZERO, ZERO
    by_code: dict[str, Decimal] = {}
    for t in taxable:
        if t.code is not None:
            by_code[t.code] = by_code.get(t.code, ZERO) + t.net * discount_ratio
    tax_lines: list[dict[str, Any]] = []
    total = ZERO
    inclusive_cut = ZERO
    for code, gross_or_net in by_code.items():
        rates = company.tax_codes[code]
        percent = sum((r.percent for r in rates), ZERO)
        if mode == "TaxInclusive":
            net = rounded(gross_or_net * HUNDRED / (HUNDRED + percent))
            inclusive_cut += rounded(gross_or_net) - net
        else:
            net = rounded(gross_or_net)
        lines, code_total = _tax_lines(rates, net)
        if mode == "TaxInclusive":
            # keep gross = net + tax exactly, putting any cent difference on the last rate
            diff = (rounded(gross_or_net) - net) - code_total
            if lines and diff:
                lines[-1]["Amount"] += diff
                code_total += diff
        tax_lines.extend(lines)
        total += code_total
    if tax_lines:
        detail = {"TxnTaxCodeRef": {"value": next(iter(by_code))}, "TotalTax": total,
                  "TaxLine": tax_lines}
    else:
        detail = {"TotalTax": ZERO}
    return detail, total, inclusive_cut


def _tax_lines(rates: list[TaxRateInfo], base: Decimal) -> tuple[list[dict[str, Any]], Decimal]:
    lines = []
    total = ZERO
    for rate in rates:
        amount = rounded(base * rate.percent / HUNDRED)
        total += amount
        lines.append({
            "DetailType": "TaxLineDetail",
            "Amount": amount,
            "TaxLineDetail": {
                "NetAmountTaxable": base,
                "TaxPercent": rate.percent,
                "TaxRateRef": {"value": rate.rate_id, "name": rate.name},
                "PercentBased": True,
            },
        })
    return lines, total


def sales_form(ctx: WriteContext, entity: str, entity_id: str, data: dict[str, Any],
               existing: Record | None, applied: Decimal) -> Prepared:
    """Invoice, SalesReceipt and CreditMemo: totals, tax, subtotal line, numbering, defaults."""
    company = ctx.company
    customer_id = ref_id(data, "CustomerRef")
    if customer_id is None:
        raise errors.required_missing("CustomerRef")
    customer = active_record(company, "Customer", customer_id, "Customer")
    out = dict(data)
    out["CustomerRef"] = {"name": customer.data["DisplayName"], "value": customer_id}
    txn_date = parse_txn_date(out["TxnDate"], "TxnDate") if "TxnDate" in out else ctx.today
    out["TxnDate"] = txn_date.isoformat()
    check_lengths(out, {"DocNumber": 21, "PrivateNote": 4000, "PaymentRefNum": 21,
                        "TrackingNum": 31})
    memo = out.get("CustomerMemo")
    if isinstance(memo, dict):
        check_lengths(memo, {"value": 1000}, "CustomerMemo.")
    check_email(out, "BillEmail")
    # currency
    currency = ref_id(out, "CurrencyRef") or company.home_currency
    if currency != company.home_currency and not company.multicurrency:
        raise errors.business("Multicurrency is not enabled for this company.")
    customer_currency = ref_id(customer.data, "CurrencyRef") or company.home_currency
    if currency != customer_currency:
        raise errors.business(
            "The currency of the transaction must match the currency of the customer."
        )
    out["CurrencyRef"] = (company.currency_ref if currency == company.home_currency
                          else {"value": currency, "name": currency})
    rate = number(out.get("ExchangeRate", 1), "ExchangeRate") if company.multicurrency else None
    if currency == company.home_currency:
        rate = Decimal(1) if company.multicurrency else None
    # tax mode
    mode = "TaxExcluded"
    if company.is_us:
        out.pop("GlobalTaxCalculation", None)
    else:
        mode = str(out.get("GlobalTaxCalculation") or "TaxExcluded")
        if mode not in GLOBAL_TAX:
            raise errors.invalid_enum("GlobalTaxCalculation", mode)
        out["GlobalTaxCalculation"] = mode
    inclusive = mode == "TaxInclusive"
    kept, discounts, specials, taxable, subtotal, shipping = _prepare_lines(
        ctx, out.get("Line"), existing, inclusive
    )
    discount_total = ZERO
    for line in discounts:
        detail = dict(line.get("DiscountLineDetail") or {})
        if as_bool(detail.get("PercentBased"), False):
            percent = number(detail.get("DiscountPercent", 0), "DiscountLineDetail.DiscountPercent")
            detail["DiscountPercent"] = percent
            amount = rounded(subtotal * percent / HUNDRED)
        else:
            amount = money(line.get("Amount", 0), "Line.Amount")
        if "DiscountAccountRef" not in detail and company.special_accounts.get("discounts"):
            acc = company.special_accounts["discounts"]
            detail["DiscountAccountRef"] = {"value": acc, "name": "Discounts given"}
        line["DiscountLineDetail"] = detail
        line["Amount"] = amount
        discount_total += amount
    apply_after = as_bool(out.get("ApplyTaxAfterDiscount"), False)
    out["ApplyTaxAfterDiscount"] = apply_after
    ratio = Decimal(1)
    if apply_after and discount_total and subtotal:
        ratio = (subtotal - discount_total) / subtotal
    tax_detail, tax_total, _inclusive_cut = _tax(ctx, out, customer, taxable, ratio, mode)
    if existing is not None and existing.voided:
        tax_detail, tax_total = {"TotalTax": ZERO}, ZERO
    out["TxnTaxDetail"] = tax_detail
    total = subtotal - discount_total + shipping + (ZERO if inclusive else tax_total)
    subtotal_line = {"DetailType": "SubTotalLineDetail", "Amount": subtotal, "SubTotalLineDetail": {}}
    out["Line"] = [*kept, subtotal_line, *discounts, *specials]
    out["TotalAmt"] = total
    out.setdefault("CustomField", [])
    linked = [lt for lt in out.get("LinkedTxn", []) if isinstance(lt, dict)
              and lt.get("TxnType") not in ("Payment", "ReceivePayment")]
    for key in ("BillAddr", "ShipAddr"):
        if key in out:
            addr = address(company, out[key], key)
            if addr is None:
                out.pop(key)
            else:
                out[key] = addr
    if "BillAddr" not in out and "BillAddr" in customer.data:
        out["BillAddr"] = dict(customer.data["BillAddr"])
    if entity != "CreditMemo" and "ShipAddr" not in out:
        source = customer.data.get("ShipAddr") or customer.data.get("BillAddr")
        if source:
            out["ShipAddr"] = dict(source)
    deliver = customer.data.get("PreferredDeliveryMethod")
    out.setdefault("PrintStatus", "NeedToPrint" if deliver == "Print" else "NotSet")
    out.setdefault("EmailStatus", "NotSet")
    if out["PrintStatus"] not in ("NotSet", "NeedToPrint", "PrintComplete"):
        raise errors.invalid_enum("PrintStatus", out["PrintStatus"])
    if out["EmailStatus"] not in ("NotSet", "NeedToSend", "EmailSent"):
        raise errors.invalid_enum("EmailStatus", out["EmailStatus"])
    if out["EmailStatus"] == "NeedToSend" and not (out.get("BillEmail") or {}).get("Address"):
        raise errors.required_missing("BillEmail")
    if entity == "Invoice":
        due = (parse_txn_date(out["DueDate"], "DueDate") if "DueDate" in out
               else txn_date + timedelta(days=DEFAULT_TERM_DAYS.get(ref_id(out, "SalesTermRef") or "3", 30)))
        out["DueDate"] = due.isoformat()
        deposit = money(out.get("Deposit", 0), "Deposit")
        out["Deposit"] = deposit
        balance = total - deposit - applied
        if balance < 0:
            raise errors.business(
                "The transaction total cannot be less than the payments applied to it."
            )
        out["Balance"] = balance
        for flag in ("AllowIPNPayment", "AllowOnlinePayment", "AllowOnlineCreditCardPayment",
                     "AllowOnlineACHPayment"):
            out[flag] = as_bool(out.get(flag), False) if flag not in ("AllowIPNPayment",
                                                                      "AllowOnlinePayment") else False
        out["LinkedTxn"] = linked
    elif entity == "SalesReceipt":
        out["Balance"] = ZERO
        deposit_to = ref_id(out, "DepositToAccountRef") or company.special_accounts["undeposited"]
        deposit_account = active_record(company, "Account", deposit_to, "Account")
        out["DepositToAccountRef"] = {"value": deposit_to, "name": deposit_account.data["Name"]}
        out.pop("DueDate", None)
        if linked:
            out["LinkedTxn"] = linked
    else:
        out["Balance"] = total - applied
        out["RemainingCredit"] = total - applied
        out.pop("DueDate", None)
    if rate is not None:
        out["ExchangeRate"] = rate
        out["HomeTotalAmt"] = rounded(total * rate)
        if entity != "SalesReceipt":
            out["HomeBalance"] = rounded(out["Balance"] * rate)
    doc = _doc_number(ctx, entity, entity_id, out, existing)
    if doc is None:
        out.pop("DocNumber", None)
    else:
        out["DocNumber"] = doc
    return Prepared(out, customer_id=customer_id, doc_number=doc, txn_date=txn_date)


def _doc_number(ctx: WriteContext, entity: str, entity_id: str, out: dict[str, Any],
                existing: Record | None) -> str | None:
    company = ctx.company
    given = out.get("DocNumber")
    old = existing.data.get("DocNumber") if existing else None
    if given in (None, "AUTO_GENERATE"):
        if given is None and existing is not None:
            return None if company.custom_txn_numbers else old
        if company.custom_txn_numbers and given is None:
            return None
        return company.next_doc_number(entity)
    doc = str(given)
    if doc != old and not ctx.allow_duplicate_doc_number:
        owners = company.doc_owners(entity, doc) - {entity_id}
        if owners:
            raise errors.duplicate_doc_number()
    return doc


def payment(ctx: WriteContext, entity_id: str, data: dict[str, Any], existing: Record | None,
            open_balance: Callable[[str, str], Decimal | None]) -> Prepared:
    """Payment: applies to invoices through Line[].LinkedTxn; the rest is UnappliedAmt.

    ``open_balance(kind, id)`` gives a linked transaction's balance excluding this payment
    (None when it does not exist).
    """
    company = ctx.company
    if "TotalAmt" not in data:
        raise errors.required_missing("TotalAmt")
    total = money(data["TotalAmt"], "TotalAmt")
    if total < 0:
        raise errors.business("You must set a transaction amount that is not negative.")
    customer_id = ref_id(data, "CustomerRef")
    if customer_id is None:
        raise errors.required_missing("CustomerRef")
    customer = active_record(company, "Customer", customer_id, "Customer")
    out = dict(data)
    out["CustomerRef"] = {"name": customer.data["DisplayName"], "value": customer_id}
    txn_date = parse_txn_date(out["TxnDate"], "TxnDate") if "TxnDate" in out else ctx.today
    out["TxnDate"] = txn_date.isoformat()
    out["TotalAmt"] = total
    check_lengths(out, {"PrivateNote": 4000, "PaymentRefNum": 21})
    currency = ref_id(out, "CurrencyRef") or company.home_currency
    if currency != company.home_currency and not company.multicurrency:
        raise errors.business("Multicurrency is not enabled for this company.")
    out["CurrencyRef"] = (company.currency_ref if currency == company.home_currency
                          else {"value": currency, "name": currency})
    deposit_to = ref_id(out, "DepositToAccountRef") or company.special_accounts["undeposited"]
    active_record(company, "Account", deposit_to, "Account")
    out["DepositToAccountRef"] = {"value": deposit_to}
    out["ProcessPayment"] = as_bool(out.get("ProcessPayment"), False)
    applications: dict[tuple[str, str], Decimal] = {}
    lines_out: list[dict[str, Any]] = []
    for raw in out.get("Line") or []:
        if not isinstance(raw, dict):
            raise errors.bad_request_body("Property Name:Line specified is unsupported or invalid")
        if "Amount" not in raw:
            raise errors.required_missing("Line.Amount")
        amount = money(raw["Amount"], "Line.Amount")
        links = raw.get("LinkedTxn") or []
        if not links:
            raise errors.required_missing("Line.LinkedTxn")
        line_links = []
        for link in links:
            kind = str(link.get("TxnType") or "")
            txn_id = str(link.get("TxnId") or "")
            if kind not in ("Invoice", "CreditMemo"):
                raise errors.invalid_enum("Line.LinkedTxn.TxnType", kind)
            record = company.get(kind, txn_id)
            balance = open_balance(kind, txn_id)
            if record is None or balance is None:
                raise errors.object_not_found()
            if ref_id(record.data, "CustomerRef") != customer_id:
                raise errors.QBOError(
                    620, "Transaction ID cannot be linked",
                    f"TxnID Cannot Be Linked : {kind} {txn_id} belongs to another customer.",
                )
            already = applications.get((kind, txn_id), ZERO)
            if amount + already > balance:
                raise errors.business(
                    f"The payment amount applied to {kind} {txn_id} ({amount}) is more than its "
                    f"open balance ({balance - already})."
                )
            applications[(kind, txn_id)] = already + amount
            line_links.append({"TxnId": txn_id, "TxnType": kind})
        first = company.get(line_links[0]["TxnType"], line_links[0]["TxnId"])
        opening = open_balance(line_links[0]["TxnType"], line_links[0]["TxnId"])
        line_ex = {"any": [_name_value("txnId", line_links[0]["TxnId"]),
                           _name_value("txnOpenBalance", str(opening)),
                           _name_value("txnReferenceNumber",
                                       str(first.data.get("DocNumber") or "") if first else "")]}
        lines_out.append({"Amount": amount, "LineEx": line_ex, "LinkedTxn": line_links})
    applied = sum((v for (k, _i), v in applications.items() if k == "Invoice"), ZERO)
    credits = sum((v for (k, _i), v in applications.items() if k == "CreditMemo"), ZERO)
    unapplied = total - applied + credits
    if unapplied < 0:
        raise errors.business(
            "The amount applied to transactions is more than the payment amount."
        )
    out["Line"] = lines_out
    out["UnappliedAmt"] = unapplied
    return Prepared(out, customer_id=customer_id, txn_date=txn_date, applications=applications)


def _name_value(name: str, value: str) -> dict[str, Any]:
    return {
        "name": "{http://schema.intuit.com/finance/v3}NameValue",
        "nil": False,
        "value": {"Name": name, "Value": value},
        "declaredType": "com.intuit.schema.finance.v3.NameValue",
        "scope": "javax.xml.bind.JAXBElement$GlobalScope",
        "globalScope": True,
        "typeSubstituted": False,
    }
