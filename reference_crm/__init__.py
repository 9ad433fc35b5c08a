"""reference_crm: a small but real CRM that mounts crm-qbo-plugin through its public API only.

Locations (tenants) with users, contacts, invoices, payments by source, an automation log and the
messages its automations send; a JSON API under /api/; the QuickBooks card under Settings.
"""
