"""xero_sandbox: a faithful local emulator of Xero's identity service and Accounting API.

``create_app()`` returns a Flask app serving Xero's OAuth 2.0 endpoints, ``/connections``, the
Accounting API under ``/api.xro/2.0/``, signed outbound webhooks and a ``/_sandbox/`` control
API. Imports nothing from ``crm_qbo_plugin`` or ``qbo_sandbox``.
"""

from xero_sandbox.app import Sandbox, create_app, get_sandbox

__all__ = ["Sandbox", "create_app", "get_sandbox"]
