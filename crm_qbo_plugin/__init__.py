"""crm-qbo-plugin: two-way sync between a CRM and QuickBooks Online.

Public API — everything a host CRM needs, and nothing else. Names are imported on first use
(PEP 562), so ``import crm_qbo_plugin.qbo`` or ``crm_qbo_plugin.mapping`` loads neither Flask, rq nor
the database layer: those packages stand alone.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crm_qbo_plugin.events import EventError, EventType, HostEvent
    from crm_qbo_plugin.extension import QuickBooksPlugin
    from crm_qbo_plugin.host import (
        Contact,
        CrmHost,
        HostUser,
        Invoice,
        InvoiceStatus,
        LineItem,
        LocationProfile,
        Origin,
        Payment,
        PaymentSource,
        RecordLabel,
        Tax,
        TriggerCall,
    )
    from crm_qbo_plugin.outbound.badge import RecordSync
    from crm_qbo_plugin.outbound.intake import PublishResult
    from crm_qbo_plugin.signing import sign_host_event

# Each public name and the module that defines it.
_EXPORTS = {
    "EventError": "events", "EventType": "events", "HostEvent": "events",
    "QuickBooksPlugin": "extension",
    "Contact": "host", "CrmHost": "host", "HostUser": "host", "Invoice": "host",
    "InvoiceStatus": "host", "LineItem": "host", "LocationProfile": "host", "Origin": "host",
    "Payment": "host", "PaymentSource": "host", "RecordLabel": "host", "Tax": "host", "TriggerCall": "host",
    "PublishResult": "outbound.intake", "RecordSync": "outbound.badge",
    "sign_host_event": "signing",
}

__all__ = [
    "Contact",
    "CrmHost",
    "EventError",
    "EventType",
    "HostEvent",
    "HostUser",
    "Invoice",
    "InvoiceStatus",
    "LineItem",
    "LocationProfile",
    "Origin",
    "Payment",
    "PaymentSource",
    "PublishResult",
    "QuickBooksPlugin",
    "RecordLabel",
    "RecordSync",
    "Tax",
    "TriggerCall",
    "sign_host_event",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
