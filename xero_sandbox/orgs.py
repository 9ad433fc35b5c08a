"""Organisations (Xero tenants): settings, limits, seeded chart of accounts, tax rates, currencies.

Each organisation holds its own records (contacts, items, invoices, payments) as the JSON dicts
Xero returns, with the moment each was last changed kept beside them for If-Modified-Since.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from xero_sandbox.timefmt import ms_json

# country: (base currency, Version, Timezone, [(name, TaxType, rate %, revenue?, expenses?)])
COUNTRIES: dict[str, tuple[str, str, str, list[tuple[str, str, str, bool, bool]]]] = {
    "NZ": ("NZD", "NZ", "NEWZEALANDSTANDARDTIME", [
        ("15% GST on Income", "OUTPUT2", "15", True, False),
        ("15% GST on Expenses", "INPUT2", "15", False, True),
        ("Zero Rated", "ZERORATED", "0", True, True),
        ("No GST", "NONE", "0", True, True),
    ]),
    "AU": ("AUD", "AU", "AUSEASTERNSTANDARDTIME", [
        ("GST on Income", "OUTPUT", "10", True, False),
        ("GST on Expenses", "INPUT", "10", False, True),
        ("GST Free Income", "EXEMPTOUTPUT", "0", True, False),
        ("GST Free Expenses", "EXEMPTEXPENSES", "0", False, True),
        ("BAS Excluded", "BASEXCLUDED", "0", True, True),
    ]),
    "GB": ("GBP", "UK", "GMTSTANDARDTIME", [
        ("20% (VAT on Income)", "OUTPUT2", "20", True, False),
        ("20% (VAT on Expenses)", "INPUT2", "20", False, True),
        ("5% (VAT on Income)", "RROUTPUT", "5", True, False),
        ("Zero Rated Income", "ZERORATEDOUTPUT", "0", True, False),
        ("No VAT", "NONE", "0", True, True),
    ]),
    "US": ("USD", "US", "EASTERNSTANDARDTIME", [
        ("Sales Tax", "TAX001", "8.25", True, False),
        ("Tax Exempt", "NONE", "0", True, True),
    ]),
}
CURRENCY_NAMES = {"NZD": "New Zealand Dollar", "AUD": "Australian Dollar", "GBP": "British Pound",
                  "USD": "United States Dollar", "EUR": "Euro", "CAD": "Canadian Dollar"}
_REPORT_TAX = {"OUTPUT2": "OUTPUT", "OUTPUT": "OUTPUT", "INPUT2": "INPUT", "INPUT": "INPUT",
               "RROUTPUT": "OUTPUT", "TAX001": "OUTPUT"}


class OrgSpecError(ValueError):
    """A bad ``POST /_sandbox/organisations`` payload."""


@dataclass
class Limits:
    """Xero's per-organisation limits (FAQ-L); the control API may change them."""

    concurrent: int = 5
    per_minute: int = 60
    per_day: int = 5000
    enabled: bool = True

    def update(self, spec: dict[str, Any]) -> None:
        for key in ("concurrent", "per_minute", "per_day"):
            if key in spec:
                value = int(spec[key])
                if value < 1:
                    raise ValueError(f"{key} must be at least 1")
                setattr(self, key, value)
        if "enabled" in spec:
            self.enabled = bool(spec["enabled"])

    def to_json(self) -> dict[str, Any]:
        return {"concurrent": self.concurrent, "per_minute": self.per_minute,
                "per_day": self.per_day, "enabled": self.enabled}


@dataclass
class Record:
    data: dict[str, Any]
    updated: datetime


@dataclass
class Org:
    tenant_id: str
    name: str
    country: str
    base_currency: str
    version: str
    timezone: str
    created: datetime
    limits: Limits = field(default_factory=Limits)
    default_sales_tax: str = "Tax Exclusive"  # the organisation's default LineAmountTypes for sales
    tax_rates: list[dict[str, Any]] = field(default_factory=list)
    accounts: list[dict[str, Any]] = field(default_factory=list)
    currencies: list[str] = field(default_factory=list)
    contacts: dict[str, Record] = field(default_factory=dict)
    items: dict[str, Record] = field(default_factory=dict)
    invoices: dict[str, Record] = field(default_factory=dict)
    payments: dict[str, Record] = field(default_factory=dict)
    next_invoice_number: int = 1
    lock: threading.RLock = field(default_factory=threading.RLock)
    # indexes so a write never scans every record (seeding 100,000 stays linear)
    contact_names: dict[str, set[str]] = field(default_factory=dict)  # lower name -> ids
    contact_numbers: dict[str, str] = field(default_factory=dict)  # ContactNumber -> id
    invoice_numbers: dict[str, set[str]] = field(default_factory=dict)  # InvoiceNumber -> ids

    def index_contact(self, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        cid = new["ContactID"]
        if old is not None:
            self.contact_names.get(old["Name"].strip().lower(), set()).discard(cid)
            if old.get("ContactNumber") and self.contact_numbers.get(old["ContactNumber"]) == cid:
                del self.contact_numbers[old["ContactNumber"]]
        self.contact_names.setdefault(new["Name"].strip().lower(), set()).add(cid)
        if new.get("ContactNumber"):
            self.contact_numbers[new["ContactNumber"]] = cid

    def contacts_named(self, name: str) -> list[Record]:
        return [self.contacts[cid] for cid in sorted(self.contact_names.get(name.strip().lower(), ()))]

    def index_invoice(self, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        iid = new["InvoiceID"]
        if old is not None and old.get("InvoiceNumber"):
            self.invoice_numbers.get(old["InvoiceNumber"], set()).discard(iid)
        if new.get("InvoiceNumber"):
            self.invoice_numbers.setdefault(new["InvoiceNumber"], set()).add(iid)

    def invoices_numbered(self, number: str) -> list[Record]:
        return [self.invoices[iid] for iid in sorted(self.invoice_numbers.get(number, ()))]

    def organisation(self) -> dict[str, Any]:
        return {
            "OrganisationID": self.tenant_id, "APIKey": self.tenant_id.replace("-", "")[:30].upper(),
            "Name": self.name, "LegalName": self.name, "PaysTax": True, "Version": self.version,
            "OrganisationType": "COMPANY", "BaseCurrency": self.base_currency,
            "CountryCode": self.country, "IsDemoCompany": False, "OrganisationStatus": "ACTIVE",
            "FinancialYearEndDay": 31, "FinancialYearEndMonth": 3, "SalesTaxBasis": "INVOICE",
            "SalesTaxPeriod": "QUARTERLY", "DefaultSalesTax": self.default_sales_tax,
            "DefaultPurchasesTax": "Tax Exclusive", "CreatedDateUTC": ms_json(self.created),
            "OrganisationEntityType": "COMPANY", "Timezone": self.timezone,
            "ShortCode": "!" + self.tenant_id[:5], "OrganisationTaxNumberName": "Tax number",
            "Edition": "BUSINESS", "Class": "PREMIUM", "LineOfBusiness": "Software",
            "Addresses": [], "Phones": [], "ExternalLinks": [], "PaymentTerms": {},
        }

    def tax_rate(self, tax_type: str) -> dict[str, Any] | None:
        for rate in self.tax_rates:
            if rate["TaxType"] == tax_type:
                return rate
        return None

    def account(self, code: str | None = None, account_id: str | None = None) -> dict[str, Any] | None:
        for account in self.accounts:
            if (code is not None and account["Code"] == code) or \
                    (account_id is not None and account["AccountID"].lower() == account_id.lower()):
                return account
        return None

    def default_output_tax(self) -> str:
        for rate in self.tax_rates:
            if rate["CanApplyToRevenue"] and Decimal(str(rate["EffectiveRate"])) > 0:
                return str(rate["TaxType"])
        return "NONE"

    def settings(self) -> dict[str, Any]:
        return {"tenant_id": self.tenant_id, "name": self.name, "country": self.country,
                "base_currency": self.base_currency, "currencies": list(self.currencies),
                "limits": self.limits.to_json(),
                "tax_rates": [{"tax_type": r["TaxType"], "name": r["Name"],
                               "rate": str(r["EffectiveRate"])} for r in self.tax_rates],
                "counts": {"contacts": len(self.contacts), "items": len(self.items),
                           "invoices": len(self.invoices), "payments": len(self.payments)}}


def _tax_rate(name: str, tax_type: str, rate: str, revenue: bool, expenses: bool) -> dict[str, Any]:
    value = Decimal(rate)
    return {
        "Name": name, "TaxType": tax_type, "ReportTaxType": _REPORT_TAX.get(tax_type, "NONE"),
        "CanApplyToAssets": True, "CanApplyToEquity": True, "CanApplyToExpenses": expenses,
        "CanApplyToLiabilities": True, "CanApplyToRevenue": revenue,
        "DisplayTaxRate": value, "EffectiveRate": value, "Status": "ACTIVE",
        "TaxComponents": [{"Name": name.split(" on ")[0], "Rate": value, "IsCompound": False,
                           "IsNonRecoverable": False}],
    }


SALES_TAX_DEFAULTS = ("Tax Exclusive", "Tax Inclusive", "No Tax")


def build_org(spec: dict[str, Any], now: datetime) -> Org:
    """An organisation from a control-API spec: ``name``, ``country`` (NZ default; AU, GB, US),
    ``base_currency``, ``currencies`` (extra enabled ones), ``tax_rates`` [{name, tax_type, rate}],
    ``limits``, ``tenant_id``, ``default_sales_tax`` (Tax Exclusive, Tax Inclusive or No Tax)."""
    country = str(spec.get("country") or "NZ").upper()
    if country == "UK":
        country = "GB"
    if country not in COUNTRIES:
        raise OrgSpecError(f"country must be one of {sorted(COUNTRIES)}")
    base, version, tz, default_rates = COUNTRIES[country]
    base = str(spec.get("base_currency") or base).upper()
    if len(base) != 3 or not base.isalpha():
        raise OrgSpecError("base_currency must be an ISO 4217 code")
    tenant_id = str(spec.get("tenant_id") or uuid.uuid4())
    try:
        uuid.UUID(tenant_id)
    except ValueError:
        raise OrgSpecError("tenant_id must be a GUID") from None
    org = Org(tenant_id=tenant_id.lower(), name=str(spec.get("name") or "Demo Company"),
              country=country, base_currency=base, version=version, timezone=tz, created=now)
    if "limits" in spec:
        org.limits.update(spec["limits"] or {})
    default_sales_tax = str(spec.get("default_sales_tax") or org.default_sales_tax)
    if default_sales_tax not in SALES_TAX_DEFAULTS:
        raise OrgSpecError(f"default_sales_tax must be one of {', '.join(SALES_TAX_DEFAULTS)}")
    org.default_sales_tax = default_sales_tax
    rates = spec.get("tax_rates")
    if rates is not None:
        if not isinstance(rates, list) or not rates:
            raise OrgSpecError("tax_rates must be a non-empty list of {name, tax_type, rate}")
        for rate in rates:
            try:
                org.tax_rates.append(_tax_rate(str(rate["name"]), str(rate["tax_type"]),
                                               str(Decimal(str(rate["rate"]))),
                                               bool(rate.get("revenue", True)),
                                               bool(rate.get("expenses", True))))
            except (KeyError, TypeError, ArithmeticError) as exc:
                raise OrgSpecError(f"bad tax rate {rate!r}") from exc
        if org.tax_rate("NONE") is None:
            org.tax_rates.append(_tax_rate("No Tax", "NONE", "0", True, True))
    else:
        org.tax_rates = [_tax_rate(*r) for r in default_rates]
    org.currencies = [base] + [str(c).upper() for c in spec.get("currencies") or []
                               if str(c).upper() != base]
    output, stamp = org.default_output_tax(), ms_json(now)

    def account(code: str, name: str, kind: str, klass: str, tax: str, **extra: Any) -> dict[str, Any]:
        row = {"AccountID": str(uuid.uuid4()), "Code": code, "Name": name, "Status": "ACTIVE",
               "Type": kind, "TaxType": tax, "Class": klass, "EnablePaymentsToAccount": False,
               "ShowInExpenseClaims": False, "ReportingCode": "", "ReportingCodeName": "",
               "HasAttachments": False, "UpdatedDateUTC": stamp, "AddToWatchlist": False}
        row.update(extra)
        return row

    org.accounts = [
        account("090", "Business Bank Account", "BANK", "ASSET", "NONE",
                BankAccountNumber="0123456789", BankAccountType="BANK", CurrencyCode=base),
        account("200", "Sales", "REVENUE", "REVENUE", output),
        account("260", "Other Revenue", "REVENUE", "REVENUE", output),
        account("310", "Cost of Goods Sold", "DIRECTCOSTS", "EXPENSE", "NONE"),
        account("400", "Advertising", "OVERHEADS", "EXPENSE", "NONE"),
        account("610", "Accounts Receivable", "CURRENT", "ASSET", "NONE", SystemAccount="DEBTORS"),
        account("800", "Accounts Payable", "CURRLIAB", "LIABILITY", "NONE", SystemAccount="CREDITORS"),
        account("820", "Sales Tax", "CURRLIAB", "LIABILITY", "NONE", SystemAccount="GST"),
        account("860", "Rounding", "CURRLIAB", "LIABILITY", "NONE", SystemAccount="ROUNDING"),
        account("880", "Owner Funds Introduced", "EQUITY", "EQUITY", "NONE",
                EnablePaymentsToAccount=True),
    ]
    return org


class OrgStore:
    """All organisations; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._orgs: dict[str, Org] = {}

    def add(self, org: Org) -> None:
        with self._lock:
            if org.tenant_id in self._orgs:
                raise OrgSpecError(f"tenant {org.tenant_id} exists")
            self._orgs[org.tenant_id] = org

    def get(self, tenant_id: str | None) -> Org | None:
        if not tenant_id:
            return None
        return self._orgs.get(tenant_id.strip().lower())

    def all(self) -> list[Org]:
        with self._lock:
            return list(self._orgs.values())

    def pairs(self) -> list[tuple[str, str]]:
        return [(o.tenant_id, o.name) for o in self.all()]

    def reset(self) -> None:
        with self._lock:
            self._orgs.clear()
