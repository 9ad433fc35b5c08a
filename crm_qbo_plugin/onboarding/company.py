"""What the plugin keeps about a connected company, read from CompanyInfo and Preferences.

Pure: takes QBO's JSON, returns facts. The sync reads them to choose how to map money and tax
(US companies fold discounts and taxes into prices; others use discount lines and tax codes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class CompanyFacts:
    name: str
    country: str
    home_currency: str
    multicurrency: bool
    custom_txn_numbers: bool
    tax_model: str  # "us_ast" (automated sales tax), "us_manual", "tax_codes" (non-US), "none"


def company_facts(company_info: dict[str, Any], preferences: dict[str, Any]) -> CompanyFacts:
    country = str(company_info.get("Country") or "US").upper()
    currency_prefs = preferences.get("CurrencyPrefs") or {}
    home = (currency_prefs.get("HomeCurrency") or {}).get("value") or ("USD" if country == "US" else "")
    sales_forms = preferences.get("SalesFormsPrefs") or {}
    tax_prefs = preferences.get("TaxPrefs") or {}
    if country == "US":
        tax_model = "us_ast" if tax_prefs.get("PartnerTaxEnabled") else "us_manual"
    else:
        tax_model = "tax_codes" if tax_prefs.get("UsingSalesTax", True) else "none"
    return CompanyFacts(
        name=str(company_info.get("CompanyName") or ""),
        country=country,
        home_currency=str(home).upper(),
        multicurrency=bool(currency_prefs.get("MultiCurrencyEnabled", False)),
        custom_txn_numbers=bool(sales_forms.get("CustomTxnNumbers", False)),
        tax_model=tax_model,
    )
