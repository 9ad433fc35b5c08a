"""`crm-qbo reconcile`: do the CRM and QuickBooks agree for a location? Lists every difference."""
