"""The card's setup: per-location settings, validated against the company in QuickBooks, and
whether setup is complete (revenue account chosen, taxes confirmed, currencies compatible)."""

from __future__ import annotations

from contextlib import closing
from dataclasses import dataclass
from typing import Any

from crm_qbo_plugin.host import LocationProfile
from crm_qbo_plugin.qbo import eq, in_
from crm_qbo_plugin.runtime.clients import client_for, xero_client_for
from crm_qbo_plugin.runtime.services import Services
from crm_qbo_plugin.store.card_settings import CardSettings, card_settings
from crm_qbo_plugin.store.connections import connection_for, store_settings
from crm_qbo_plugin.store.tables import Connection, ConnectionStatus
from crm_qbo_plugin.store.types import Provider, utcnow


class SettingsRejected(Exception):
    """A settings change that cannot be applied; `fields` says which and why."""

    def __init__(self, fields: dict[str, str], status: int = 400) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in fields.items()))
        self.fields = fields
        self.status = status


@dataclass(frozen=True)
class Setup:
    revenue_account_chosen: bool
    taxes_confirmed: bool
    currency_ok: bool | None
    currency_message: str | None
    taxes_mapped: bool = True
    tax_mapping_needed: bool = False

    @property
    def complete(self) -> bool:
        return (self.revenue_account_chosen and self.taxes_confirmed and self.taxes_mapped
                and self.currency_ok is not False)


def setup_of(conn: Connection | None, profile: LocationProfile | None) -> Setup:
    """US companies get taxes folded into prices (nothing to map); others map every CRM tax."""
    settings = card_settings(conn)
    crm_currency = profile.currency if profile else None
    mapping_needed = conn is not None and conn.country not in (None, "US") and bool(profile and profile.taxes)
    mapped = not mapping_needed or all(tax.id in settings.tax_mapping for tax in (profile.taxes if profile else ()))
    currency_ok: bool | None = None
    message = None
    if conn is not None and conn.home_currency and crm_currency:
        currency_ok = crm_currency.upper() == conn.home_currency or conn.multicurrency
        if not currency_ok:
            message = (f"This location sells in {crm_currency.upper()} but the QuickBooks company's home currency is "
                       f"{conn.home_currency} and multicurrency is off: turn on multicurrency in QuickBooks "
                       f"(Settings → Advanced → Currency) or change the location's currency.")
    return Setup(bool(settings.revenue_account_id), settings.taxes_confirmed, currency_ok, message,
                 taxes_mapped=mapped, tax_mapping_needed=mapping_needed)


# Income accounts that must never receive sales: they reduce revenue or hold unapplied cash.
NOT_REVENUE = frozenset({"DiscountsRefundsGiven", "UnappliedCashPaymentIncome"})


def income_accounts(state: Services, conn: Connection) -> list[dict[str, Any]]:
    """The accounts sales may go to, for the card's revenue-account choice."""
    return ACCOUNT_LISTS[conn.provider](state, _realm(conn))


def tax_codes(state: Services, conn: Connection) -> list[dict[str, Any]]:
    """The company's tax codes (QuickBooks) or tax types (Xero), for the card's tax mapping."""
    return TAX_LISTS[conn.provider](state, _realm(conn))


def _qbo_income_accounts(state: Services, realm_id: str) -> list[dict[str, Any]]:
    with client_for(state, realm_id) as qbo:
        rows = qbo.query_all("Account", where=[eq("AccountType", "Income"), eq("Active", True)], order_by="Name")
    return [{"id": str(r["Id"]), "name": r.get("Name", ""), "account_type": r.get("AccountSubType") or r.get("AccountType", "")}
            for r in rows if r.get("AccountSubType") not in NOT_REVENUE]


def _qbo_tax_codes(state: Services, realm_id: str) -> list[dict[str, Any]]:
    with client_for(state, realm_id) as qbo:
        rows = qbo.query_all("TaxCode", where=[eq("Active", True)], order_by="Name")
    return [{"id": str(r["Id"]), "name": r.get("Name", ""), "description": r.get("Description")} for r in rows]


def _xero_revenue_accounts(state: Services, org: str) -> list[dict[str, Any]]:
    with closing(xero_client_for(state, org)) as xero:
        rows = xero.accounts()
    return [{"id": str(r["Code"]), "name": r.get("Name", ""), "account_type": r.get("Type", "")}
            for r in sorted(rows, key=lambda r: str(r.get("Name", "")))
            if r.get("Class") == "REVENUE" and r.get("Status", "ACTIVE") == "ACTIVE" and r.get("Code")]


def _xero_tax_types(state: Services, org: str) -> list[dict[str, Any]]:
    with closing(xero_client_for(state, org)) as xero:
        rows = xero.tax_rates()
    return [{"id": str(r["TaxType"]), "name": r.get("Name", ""), "description": None}
            for r in sorted(rows, key=lambda r: str(r.get("Name", ""))) if r.get("Status", "ACTIVE") == "ACTIVE"]


ACCOUNT_LISTS = {Provider.QUICKBOOKS.value: _qbo_income_accounts, Provider.XERO.value: _xero_revenue_accounts}
TAX_LISTS = {Provider.QUICKBOOKS.value: _qbo_tax_codes, Provider.XERO.value: _xero_tax_types}


def _realm(conn: Connection) -> str:
    if conn.status != ConnectionStatus.CONNECTED.value or conn.realm_id is None:
        raise SettingsRejected({"connection": "connect QuickBooks first"}, status=409)
    return conn.realm_id


def update_settings(state: Services, tenant: str, changes: dict[str, Any]) -> CardSettings:
    """Validate `changes` (already schema-checked, typed) against QuickBooks and store them, all or
    nothing; returns the settings now stored."""
    conn = connection_for(state.engine, tenant)
    connected = conn is not None and conn.status == ConnectionStatus.CONNECTED.value
    problems: dict[str, str] = {}
    for key in ("import_invoices", "import_customers"):
        if key in changes and connected:
            problems[key] = "only read when connecting; disconnect and connect again to change it"
    needs_qbo = [k for k in ("revenue_account_id", "payment_account_id", "tax_mapping") if changes.get(k)]
    if needs_qbo and not connected:
        for key in needs_qbo:
            problems[key] = "connect QuickBooks first"
    if problems:
        raise SettingsRejected(problems, status=409)
    stored = card_settings(conn)
    invoices_on = changes.get("import_invoices", stored.import_invoices)
    if invoices_on and not changes.get("import_customers", stored.import_customers):
        key = "import_customers" if "import_customers" in changes else "import_invoices"
        raise SettingsRejected({key: "imported invoices need their customers: import customers too, "
                                     "or leave invoices out"})
    if connected and conn is not None and conn.realm_id:
        CHECKS[conn.provider](state, conn.realm_id, changes, problems)
    if problems:
        raise SettingsRejected(problems)
    now = utcnow()

    def updates_of(current: CardSettings) -> dict[str, Any]:
        updates = dict(changes)
        if changes.get("review_request") and not current.review_request:
            # Switching it on never fires for invoices settled while it was off.
            updates["review_request_since"] = now
        if "tax_mapping" in changes and changes["tax_mapping"] != current.tax_mapping:
            updates["taxes_confirmed"] = bool(changes.get("taxes_confirmed", False))  # re-confirm after a change
        return updates

    return store_settings(state.engine, tenant, state.manifest.defaults(), updates_of, now)


def _check_quickbooks(state: Services, realm_id: str, changes: dict[str, Any], problems: dict[str, str]) -> None:
    """The accounts and tax codes `changes` name, as the connected QuickBooks company has them."""
    with client_for(state, realm_id) as qbo:
        if changes.get("revenue_account_id"):
            found = qbo.query_all("Account", where=[eq("Id", _digits(changes["revenue_account_id"], "revenue_account_id"))])
            if (not found or found[0].get("AccountType") != "Income" or found[0].get("Active") is False
                    or found[0].get("AccountSubType") in NOT_REVENUE):
                problems["revenue_account_id"] = "not an active sales income account of the connected company"
        if changes.get("tax_mapping"):
            wanted = sorted(set(changes["tax_mapping"].values()))
            rows = qbo.query_all("TaxCode", where=[in_("Id", wanted)])
            missing = sorted(set(wanted) - {str(r["Id"]) for r in rows})
            if missing:
                problems["tax_mapping"] = f"unknown QuickBooks tax code(s): {', '.join(missing)}"


def _check_xero(state: Services, org: str, changes: dict[str, Any], problems: dict[str, str]) -> None:
    """The account codes and tax types `changes` name, as the connected Xero organisation has them."""
    with closing(xero_client_for(state, org)) as xero:
        accounts = {str(a.get("Code")): a for a in xero.accounts() if a.get("Status", "ACTIVE") == "ACTIVE"}
        revenue = changes.get("revenue_account_id")
        if revenue and (accounts.get(revenue) or {}).get("Class") != "REVENUE":
            problems["revenue_account_id"] = "not the code of an active revenue account of the connected organisation"
        bank = changes.get("payment_account_id")
        if bank and not ((accounts.get(bank) or {}).get("Type") == "BANK"
                         or (accounts.get(bank) or {}).get("EnablePaymentsToAccount")):
            problems["payment_account_id"] = "not the code of an active bank account of the connected organisation"
        if changes.get("tax_mapping"):
            known = {str(r.get("TaxType")) for r in xero.tax_rates()}
            missing = sorted(set(changes["tax_mapping"].values()) - known)
            if missing:
                problems["tax_mapping"] = f"unknown Xero tax type(s): {', '.join(missing)}"


# The company checks of a settings change, by the connection's provider.
CHECKS = {Provider.QUICKBOOKS.value: _check_quickbooks, Provider.XERO.value: _check_xero}


def _digits(value: str, field: str) -> str:
    if not value.isdigit():
        raise SettingsRejected({field: "must be a QuickBooks id"})
    return value
