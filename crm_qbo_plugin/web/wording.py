"""The card's words for records and sync work: what a user calls a record, where it lives in
the books (QuickBooks Online or Xero), and plain-language summaries and advice instead of counters.

Every user-visible name of the accounting system goes through `books_of` (the one seam): templates,
card.js (through the card's data attributes) and the JSON API say "Xero" for a Xero location."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from crm_qbo_plugin.host import RecordLabel

# Pages of QuickBooks Online's web app (the company open in the user's browser session).
QBO_APP = {"production": "https://app.qbo.intuit.com", "sandbox": "https://app.sandbox.qbo.intuit.com"}
QBO_PAGES = {"contact": ("customer", "app/customerdetail?nameId="), "invoice": ("invoice", "app/invoice?txnId="),
             "sales_receipt": ("sales receipt", "app/salesreceipt?txnId="), "payment": ("payment", "app/recvpayment?txnId=")}
NOUNS = {"contact": ("contact", "contacts"), "invoice": ("invoice", "invoices"), "payment": ("payment", "payments")}
KIND_TITLES = {"contact": "Contact", "invoice": "Invoice", "payment": "Payment", "sales_receipt": "Payment"}
# What a record in each status lets the user do: Retry and Ignore only where they change something.
ACTIONS = {"failed": ["retry", "ignore"], "conflict": ["retry", "ignore"], "not_synced": ["retry", "ignore"],
           "ignored": ["retry"]}
# Known QuickBooks refusals and what the user can do about each (matched on the stored error text).
ADVICE = (
    ("closed", "Once the date is in an open period (or the period is reopened in QuickBooks), press Retry."),
    ("duplicate", "Rename one of the two records (QuickBooks needs unique names and numbers), then Retry."),
    ("tax", "Check the tax mapping under Settings, then Retry."),
    ("account", "Choose the revenue account under Settings, then Retry."),
    ("disconnected", "Reconnect QuickBooks, then Retry."),
    ("reconnect", "Reconnect QuickBooks, then Retry."),
)
DEFAULT_ADVICE = "Correct the record in the CRM, then Retry it under Errors."


@dataclass(frozen=True)
class Books:
    """How the card names a location's accounting system."""

    name: str  # in sentences: "QuickBooks", "Xero"
    product: str  # the card's title
    vendor: str  # who holds the grant ("disconnected at Intuit")
    tax_code: str  # what a CRM tax maps to
    customer: str  # what a CRM contact becomes there
    items: str  # how invoice lines meet its products
    logo: str
    field_mapping: bool  # the card's "Map fields" table applies (QuickBooks' DocNumber, memo, notes)


QUICKBOOKS = Books(name="QuickBooks", product="QuickBooks Online", vendor="Intuit", tax_code="tax code",
                   customer="customer", logo="qb", field_mapping=True,
                   items="QuickBooks products are never imported. Each invoice line is matched to a QuickBooks item"
                         " by SKU or name, and a missing item is created on your revenue account.")
XERO = Books(name="Xero", product="Xero", vendor="Xero", tax_code="tax rate", customer="contact", logo="x",
             field_mapping=False,
             items="Xero items are never imported or created: a line whose SKU is a Xero item's code (or, without"
                   " a SKU, whose name is an item's name) is sent as that item; every line keeps its description and"
                   " amount on your revenue account, and the CRM's invoice number is the Xero invoice number.")


def books_of(provider: str | None) -> Books:
    """The words for a connection's provider (`Connection.provider`); no connection: QuickBooks."""
    return XERO if provider == "xero" else QUICKBOOKS


def connect_labels(books: Books, status: str) -> tuple[str, str]:
    """(QuickBooks' button, Xero's button) on the connect form: the location's own books are
    connected (or reconnected), the other system is offered instead."""
    again = "Reconnect" if status == "needs_reconnect" else "Connect"
    if books is XERO:
        return "Connect to QuickBooks instead", f"{again} to Xero"
    return f"{again} to QuickBooks", "Connect to Xero instead"


_QBO_WORDS = re.compile(r"QuickBooks(?: Online)?|Intuit")


def speak(text: str, books: Books) -> str:
    """A sentence the engine stored in QuickBooks' words (a record's reason, a connection's error),
    in this location's books' words."""
    if books is QUICKBOOKS:
        return text
    return _QBO_WORDS.sub(lambda m: books.vendor if m.group(0) == "Intuit" else books.name, text)


def qbo_app(environment: str) -> str:
    return QBO_APP["production" if environment.lower() == "production" else "sandbox"]


XERO_PAGES = {"contact": ("contact", "https://go.xero.com/Contacts/View/"),
              "invoice": ("invoice", "https://go.xero.com/AccountsReceivable/View.aspx?InvoiceID="),
              "sales_receipt": ("sales invoice", "https://go.xero.com/AccountsReceivable/View.aspx?InvoiceID=")}


def qbo_link(environment: str, kind: str, qbo_id: str | None, doc_number: str | None = None,
             provider: str = "quickbooks") -> tuple[str | None, str | None]:
    """("QuickBooks invoice 1011", its web address), or (None, None) for a record not in QuickBooks.
    The title names the record by its QuickBooks number (DocNumber) when it has one, else its id.
    For a Xero connection: ("Xero invoice INV-1011", its page at go.xero.com)."""
    if provider == "xero":
        if not qbo_id or kind not in XERO_PAGES:
            return (f"Xero {kind.replace('_', ' ')} {doc_number or qbo_id}", None) if qbo_id else (None, None)
        noun, page = XERO_PAGES[kind]
        return f"Xero {noun} {doc_number or qbo_id}", f"{page}{qbo_id}"
    if not qbo_id or kind not in QBO_PAGES:
        return None, None
    noun, page = QBO_PAGES[kind]
    return f"QuickBooks {noun} {doc_number or qbo_id}", f"{qbo_app(environment)}/{page}{qbo_id}"


def fallback_label(kind: str, crm_id: str) -> RecordLabel:
    return RecordLabel(title=f"{KIND_TITLES.get(kind, kind.title())} {crm_id}")


_EXCEPTION_PREFIX = re.compile(r"^[A-Z][A-Za-z]*(?:Error|Failed|Exception): ")


def plain_error(error: str) -> str:
    """The stored error without the exception name a push failure is recorded with."""
    return _EXCEPTION_PREFIX.sub("", error, count=1)


def advice(error: str, books: Books = QUICKBOOKS) -> str:
    lowered = error.lower()
    return speak(next((text for key, text in ADVICE if key in lowered), DEFAULT_ADVICE), books)


def _count(n: int, kind: str) -> str:
    one, many = NOUNS.get(kind, (kind, kind + "s"))
    return f"{n} {one if n == 1 else many}"


def _and(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def summary(sent: Mapping[str, int], received: int, imported: int, failed: int, errors: int,
            books: Books = QUICKBOOKS) -> str:
    """E.g. "Sent 2 invoices and 1 payment to QuickBooks · Received 1 change · 1 failed"."""
    parts = []
    order = [k for k in ("invoice", "payment", "contact") if sent.get(k)] + sorted(k for k in sent if k not in NOUNS and sent[k])
    if order:
        parts.append(f"Sent {_and([_count(sent[k], k) for k in order])} to {books.name}")
    if imported:
        parts.append(f"Imported {imported} record{'s' if imported != 1 else ''} from {books.name}")
    if received:
        parts.append(f"Received {received} change{'s' if received != 1 else ''} from {books.name}")
    if failed:
        parts.append(f"{failed} could not be sent")
    if errors:
        parts.append(f"{errors} problem{'s' if errors != 1 else ''} reading {books.name}")
    return " · ".join(parts)


XERO_DAY_LIMIT = 5000  # calls per organisation in a rolling day (xero-api.md §6; 1,000 on the Starter tier)
DAY_BUDGET_LOW = XERO_DAY_LIMIT // 10  # below this the card warns


def day_budget_warning(remaining: int | None, frees_at: datetime | None) -> str | None:
    """The card's warning while Xero's daily budget of calls runs low (None: plenty left, or not
    seen yet): what is left, that work then waits and nothing is lost, and when it refills."""
    if remaining is None or remaining >= DAY_BUDGET_LOW:
        return None
    refill = "Xero counts the calls of the last 24 hours"
    if frees_at is not None:
        refill += f"; the oldest free up from {frees_at.strftime('%Y-%m-%d %H:%M UTC')}"
    left = "is spent" if remaining <= 0 else f"is running low: {remaining:,} calls left"
    return (f"Xero's daily budget of calls for this organisation {left}. When it is spent, sending waits and "
            f"nothing is lost: changes stay queued and go to Xero by themselves as the budget refills ({refill}).")
