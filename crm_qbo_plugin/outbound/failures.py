"""Push failures a person must act on, and QBO's refusals turned into what to do about them.

A handler raises `PushFailed` (or `PushConflict`) with a message for the card; the push wrapper
stores it on the record's link (status failed / conflict) and the processor marks the outbox row
failed with the same text. Transient errors are not here: they are retried.
"""

from __future__ import annotations

from datetime import date

from crm_qbo_plugin.qbo import (
    BooksClosedError,
    DuplicateDocNumberError,
    NotFoundError,
    QboError,
    StaleObjectError,
    ValidationError,
)
from crm_qbo_plugin.store.tables import LinkStatus
from crm_qbo_plugin.xero import NotFoundError as XeroNotFoundError
from crm_qbo_plugin.xero import ValidationError as XeroValidationError
from crm_qbo_plugin.xero import XeroError


class PushFailed(Exception):
    """The record cannot be pushed until someone changes something; the message says what."""

    status: str = LinkStatus.FAILED


class PushConflict(PushFailed):
    """QBO and the CRM disagree in a way we must not guess about (e.g. a number clash)."""

    status: str = LinkStatus.CONFLICT


def explain(exc: QboError, what: str, txn_date: date | None = None, doc_number: str | None = None) -> PushFailed:
    """A `PushFailed` that says what QBO refused and what to change."""
    if isinstance(exc, BooksClosedError):
        when = txn_date.isoformat() if txn_date else "this date"
        return PushFailed(f"QuickBooks books are closed for {when}; change the date or reopen the period")
    if isinstance(exc, DuplicateDocNumberError):
        return PushConflict(f"the number {doc_number or ''} is already used by another QuickBooks "
                            f"{what}; give it another number in the CRM, then retry")
    if isinstance(exc, StaleObjectError):
        return PushConflict(f"the QuickBooks {what} kept changing while we updated it; "
                            "check it in QuickBooks, then retry")
    if isinstance(exc, NotFoundError):
        return PushFailed(f"QuickBooks no longer has something this {what} refers to ({exc.message}); "
                          "check the customer and products in QuickBooks, then retry")
    if isinstance(exc, ValidationError):
        return PushFailed(f"QuickBooks refused the {what}: {exc.detail or exc.message} "
                          f"(code {exc.code}); correct it in the CRM, then retry")
    return PushFailed(f"QuickBooks refused the {what}: {exc.message} (code {exc.code})")


def explain_xero(exc: XeroError, what: str) -> PushFailed:
    """A `PushFailed` that says what Xero refused and what to change."""
    if isinstance(exc, XeroNotFoundError):
        return PushFailed(f"Xero no longer has something this {what} refers to; "
                          "check the contact and invoice in Xero, then retry")
    if isinstance(exc, XeroValidationError):
        return PushFailed(f"Xero refused the {what}: {exc.message}; correct it in the CRM or in Xero, then retry")
    return PushFailed(f"Xero refused the {what}: {exc.message}")
