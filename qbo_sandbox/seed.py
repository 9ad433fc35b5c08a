"""A new company as QBO hands it over: chart of accounts, a Services item, tax codes, prefs.

US companies get the pseudo tax codes TAX/NON plus one tax group (transaction-level, as QBO's
pre-AST US model); other countries get real tax codes with rates (GB: 20% standard, 5% reduced,
0% zero-rated, exempt), applied per line.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from qbo_sandbox.companies import (
    COUNTRY_CURRENCY,
    Company,
    Limits,
    Record,
    TaxRateInfo,
    new_realm_id,
)
from qbo_sandbox.timefmt import DEFAULT_TZ, meta_time

DEFAULT_TAX_CODES: dict[str, list[tuple[str, float]]] = {  # name, percent
    "GB": [("20.0% S", 20.0), ("5.0% R", 5.0), ("0.0% Z", 0.0), ("Exempt", 0.0)],
    "CA": [("GST", 5.0), ("HST ON", 13.0), ("Zero-rated", 0.0), ("Exempt", 0.0)],
    "AU": [("GST", 10.0), ("GST free", 0.0)],
    "IN": [("GST 18%", 18.0), ("GST 0%", 0.0)],
}
FALLBACK_TAX_CODES: list[tuple[str, float]] = [("Standard", 10), ("Zero-rated", 0)]

ACCOUNTS: list[tuple[str, str, str, str, str]] = [
    # key, Name, AccountType, AccountSubType, Classification
    ("product_income", "Sales of Product Income", "Income", "SalesOfProductIncome", "Revenue"),
    ("services_income", "Services", "Income", "ServiceFeeIncome", "Revenue"),
    ("receivable", "Accounts Receivable (A/R)", "Accounts Receivable", "AccountsReceivable", "Asset"),
    ("undeposited", "Undeposited Funds", "Other Current Asset", "UndepositedFunds", "Asset"),
    ("checking", "Checking", "Bank", "Checking", "Asset"),
    ("discounts", "Discounts given", "Income", "DiscountsRefundsGiven", "Revenue"),
    ("cogs", "Cost of Goods Sold", "Cost of Goods Sold", "SuppliesMaterialsCogs", "Expense"),
    ("inventory", "Inventory Asset", "Other Current Asset", "Inventory", "Asset"),
]


class CompanySpecError(ValueError):
    """A bad ``POST /_sandbox/companies`` payload."""


def _meta(now: datetime, tz: ZoneInfo) -> dict[str, str]:
    stamp = meta_time(now, tz)
    return {"CreateTime": stamp, "LastUpdatedTime": stamp}


def _entity(data: dict[str, Any], now: datetime, tz: ZoneInfo, envelope: bool = True) -> Record:
    if envelope:
        data = {**data, "domain": "QBO", "sparse": False, "SyncToken": "0",
                "MetaData": _meta(now, tz)}
    else:
        data = {**data, "MetaData": _meta(now, tz)}
    return Record(data=data, created=now, updated=now)


def build_company(payload: dict[str, Any], now: datetime) -> Company:
    """Validate a control-API payload and return a seeded company."""
    country = str(payload.get("country") or "US").upper()
    if country == "UK":
        country = "GB"
    if len(country) != 2 or not country.isalpha():
        raise CompanySpecError("country must be a two-letter code such as US, GB, CA or AU")
    currency = str(payload.get("home_currency") or COUNTRY_CURRENCY.get(country, "USD")).upper()
    if len(currency) != 3:
        raise CompanySpecError("home_currency must be an ISO 4217 code such as USD")
    try:
        tz = ZoneInfo(str(payload.get("timezone") or DEFAULT_TZ))
    except Exception as exc:  # noqa: BLE001 - ZoneInfo raises several types
        raise CompanySpecError(f"unknown timezone: {exc}") from None
    realm_id = str(payload.get("realm_id") or payload.get("realmId") or new_realm_id())
    if not realm_id.isdigit():
        raise CompanySpecError("realm_id must be digits")
    limits = Limits()
    try:
        limits.update(payload.get("limits") or {})
    except (TypeError, ValueError) as exc:
        raise CompanySpecError(str(exc)) from None
    name = str(payload.get("name") or f"Sandbox Company {country}")
    company = Company(
        realm_id=realm_id,
        name=name,
        country=country,
        home_currency=currency,
        tz=tz,
        created=now,
        limits=limits,
    )
    company.name_conflicts = bool(payload.get("name_conflicts", True))
    company.name_write_ms = float(payload.get("name_write_ms", 0) or 0)
    if payload.get("books_closed_date"):
        try:
            company.books_closed_date = date.fromisoformat(str(payload["books_closed_date"]))
        except ValueError:
            raise CompanySpecError("books_closed_date must be YYYY-MM-DD") from None
    _seed_accounts(company, now)
    _seed_tax(company, payload, now)
    _seed_item(company, now)
    company.put("Preferences", _entity(_preferences(company, payload), now, tz))
    company.put("CompanyInfo", _entity(_company_info(company, payload, now), now, tz))
    return company


def _seed_accounts(company: Company, now: datetime) -> None:
    for index, (key, name, acct_type, sub_type, classification) in enumerate(ACCOUNTS, start=1):
        account = {
            "Id": str(index),
            "Name": name,
            "FullyQualifiedName": name,
            "AccountType": acct_type,
            "AccountSubType": sub_type,
            "Classification": classification,
            "Active": True,
            "SubAccount": False,
            "CurrentBalance": Decimal(0),
            "CurrentBalanceWithSubAccounts": Decimal(0),
            "CurrencyRef": company.currency_ref,
        }
        company.put("Account", _entity(account, now, company.tz))
        company.claim_name("Account", str(index), None, name)
        company.special_accounts[key] = str(index)


def _seed_item(company: Company, now: datetime) -> None:
    income = company.special_accounts["services_income"]
    item = {
        "Id": "1",
        "Name": "Services",
        "FullyQualifiedName": "Services",
        "Type": "Service",
        "Active": True,
        "Taxable": False,
        "UnitPrice": Decimal(0),
        "PurchaseCost": Decimal(0),
        "TrackQtyOnHand": False,
        "IncomeAccountRef": {"value": income, "name": "Services"},
    }
    if not company.is_us:
        item["SalesTaxCodeRef"] = {"value": company.default_tax_code}
    company.put("Item", _entity(item, now, company.tz))
    company.claim_name("Item", "1", None, "Services")


def _rate_list(payload: dict[str, Any], country: str) -> list[tuple[str, float]]:
    given = payload.get("tax_codes")
    if given is None:
        return DEFAULT_TAX_CODES.get(country, FALLBACK_TAX_CODES)
    if not isinstance(given, list) or not given:
        raise CompanySpecError('tax_codes must be a non-empty list of {"name", "rate"}')
    out = []
    for entry in given:
        if not isinstance(entry, dict) or not entry.get("name") or "rate" not in entry:
            raise CompanySpecError('each tax code needs "name" and "rate" (percent)')
        out.append((str(entry["name"]), float(entry["rate"])))
    return out


def _seed_tax(company: Company, payload: dict[str, Any], now: datetime) -> None:
    tz = company.tz
    if company.is_us:
        for code, taxable in (("TAX", True), ("NON", False)):
            company.put("TaxCode", _entity(
                {"Id": code, "Name": code, "Description": code, "TaxGroup": False,
                 "Taxable": taxable}, now, tz, envelope=False))
        rates = payload.get("tax_rates") or [
            {"name": "Sales Tax", "rate": payload.get("sales_tax_rate", 8)}
        ]
        details = []
        infos = []
        for index, entry in enumerate(rates, start=1):
            rate_id = str(index)
            percent = Decimal(str(entry.get("rate", 0)))
            name = str(entry.get("name") or f"Rate {index}")
            infos.append(TaxRateInfo(rate_id, name, percent))
            company.put("TaxRate", _entity(_tax_rate(rate_id, name, percent), now, tz))
            details.append({"TaxTypeApplicable": "TaxOnAmount",
                            "TaxRateRef": {"name": name, "value": rate_id}, "TaxOrder": 0})
        group_name = str(payload.get("tax_group_name") or "Sales Tax")
        company.put("TaxCode", _entity(
            {"Id": "2", "Name": group_name, "Description": group_name, "TaxGroup": True,
             "Taxable": True, "Active": True, "SalesTaxRateList": {"TaxRateDetail": details},
             "PurchaseTaxRateList": {"TaxRateDetail": []}}, now, tz))
        company.tax_codes["2"] = infos
        company.default_tax_code = "2"
        return
    for index, (name, rate) in enumerate(_rate_list(payload, company.country), start=1):
        rate_id = str(index)
        code_id = str(index + 1)
        value = Decimal(str(rate))
        company.put("TaxRate", _entity(_tax_rate(rate_id, name, value), now, tz))
        company.put("TaxCode", _entity(
            {"Id": code_id, "Name": name, "Description": name, "TaxGroup": True,
             "Taxable": name.lower() != "exempt", "Active": True, "Hidden": False,
             "SalesTaxRateList": {"TaxRateDetail": [
                 {"TaxTypeApplicable": "TaxOnAmount",
                  "TaxRateRef": {"name": name, "value": rate_id}, "TaxOrder": 0}]},
             "PurchaseTaxRateList": {"TaxRateDetail": []}}, now, tz))
        company.tax_codes[code_id] = [TaxRateInfo(rate_id, name, value)]
        if not company.default_tax_code:
            company.default_tax_code = code_id


def _tax_rate(rate_id: str, name: str, percent: Decimal) -> dict[str, Any]:
    return {"Id": rate_id, "Name": name, "Description": name, "Active": True,
            "RateValue": percent, "AgencyRef": {"value": "1"}, "SpecialTaxType": "NONE",
            "DisplayType": "ReadOnly",
            "EffectiveTaxRate": [{"RateValue": percent, "EffectiveDate": "2014-01-01T00:00:00-08:00"}]}


def _preferences(company: Company, payload: dict[str, Any]) -> dict[str, Any]:
    tax_prefs: dict[str, Any] = {"UsingSalesTax": True}
    if company.is_us:
        tax_prefs["PartnerTaxEnabled"] = False
        tax_prefs["TaxGroupCodeRef"] = {"value": company.default_tax_code}
    return {
        "Id": "1",
        "AccountingInfoPrefs": {"TrackDepartments": False, "DepartmentTerminology": "Department",
                                "ClassTrackingPerTxn": False, "ClassTrackingPerTxnLine": False,
                                "CustomerTerminology": "Customers"},
        "ProductAndServicesPrefs": {"ForSales": True, "ForPurchase": True,
                                    "QuantityWithPriceAndRate": True, "QuantityOnHand": True},
        "SalesFormsPrefs": {
            "CustomField": [],
            "CustomTxnNumbers": bool(payload.get("custom_txn_numbers", False)),
            "AllowDeposit": True,
            "AllowDiscount": True,
            "AllowEstimates": True,
            "ETransactionEnabledStatus": "NotApplicable",
            "IPNSupportEnabled": False,
            "AllowServiceDate": False,
            "AllowShipping": True,
            "DefaultTerms": {"value": "3"},
        },
        "EmailMessagesPrefs": {
            "InvoiceMessage": {"Subject": "Invoice from {CompanyName}",
                               "Message": "Your invoice is attached. Please remit payment at your earliest convenience."},
            "EstimateMessage": {"Subject": "Estimate from {CompanyName}",
                                "Message": "Please review the estimate below. Feel free to contact us if you have any questions."},
            "SalesReceiptMessage": {"Subject": "Sales Receipt from {CompanyName}",
                                    "Message": "Your sales receipt is attached."},
        },
        "VendorAndPurchasesPrefs": {"TrackingByCustomer": False, "BillableExpenseTracking": False,
                                    "DefaultTerms": {"value": "3"}},
        "TimeTrackingPrefs": {"UseServices": True, "BillCustomers": False,
                              "ShowBillRateToAll": False, "MarkTimeEntriesBillable": False},
        "TaxPrefs": tax_prefs,
        "CurrencyPrefs": {"MultiCurrencyEnabled": bool(payload.get("multicurrency", False)),
                          "HomeCurrency": {"value": company.home_currency}},
        "OtherPrefs": {"NameValue": [
            {"Name": "SalesFormsPrefs.DefaultCustomerMessage", "Value": ""},
            {"Name": "SalesFormsPrefs.DefaultItem", "Value": "1"},
        ]},
    }


def _company_info(company: Company, payload: dict[str, Any], now: datetime) -> dict[str, Any]:
    addr = {"Id": "1", "Line1": "2500 Garcia Ave", "City": "Mountain View",
            "CountrySubDivisionCode": "CA", "PostalCode": "94043", "Country": company.country}
    return {
        "Id": "1",
        "CompanyName": company.name,
        "LegalName": company.name,
        "CompanyAddr": addr,
        "LegalAddr": dict(addr),
        "CustomerCommunicationAddr": dict(addr),
        "Country": company.country,
        "SupportedLanguages": "en",
        "FiscalYearStartMonth": "January",
        "CompanyStartDate": now.astimezone(company.tz).date().isoformat(),
        "PrimaryPhone": {"FreeFormNumber": "(650)944-4444"},
        "Email": {"Address": str(payload.get("email") or "donotreply@intuit.com")},
        "WebAddr": {},
        "EmployerId": "123456789",
        "NameValue": [
            {"Name": "NeoEnabled", "Value": "true"},
            {"Name": "IndustryType", "Value": "Sandbox"},
            {"Name": "IndustryCode", "Value": "0"},
            {"Name": "SubscriptionStatus", "Value": "PAID"},
            {"Name": "OfferingSku", "Value": "QuickBooks Online Plus"},
            {"Name": "PayrollFeature", "Value": "false"},
            {"Name": "AccountantFeature", "Value": "false"},
            {"Name": "IsQbdtMigrated", "Value": "false"},
            {"Name": "MigrationDate", "Value": meta_time(now, company.tz)},
            {"Name": "QBOIndustryType", "Value": "Sandbox"},
            {"Name": "AssignedTime", "Value": meta_time(now, company.tz)},
        ],
    }
