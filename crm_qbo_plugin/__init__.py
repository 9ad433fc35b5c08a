"""crm-qbo-plugin: two-way sync between a CRM and QuickBooks Online.

Public API — everything a host CRM needs, and nothing else.
"""

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
    Tax,
    TriggerCall,
)
from crm_qbo_plugin.outbound.intake import PublishResult
from crm_qbo_plugin.signing import sign_host_event

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
    "Tax",
    "TriggerCall",
    "sign_host_event",
]
