"""qbo_sandbox: a faithful local emulator of the QuickBooks Online Accounting API v3.

``create_app()`` returns a Flask app serving Intuit's REST paths, OAuth endpoints, outbound
webhooks and a ``/_sandbox/`` control API. Imports nothing from ``crm_qbo_plugin``.
"""

from qbo_sandbox.app import Sandbox, create_app, get_sandbox

__all__ = ["Sandbox", "create_app", "get_sandbox"]
