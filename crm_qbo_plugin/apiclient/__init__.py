"""HTTP API client plumbing any accounting system's client uses: the retry policy and exact JSON.

Provider-neutral: it imports nothing of the plugin (not even ``host``) and nothing of Flask, rq or
the database. ``qbo/`` and ``xero/`` build on it and keep what is theirs (endpoints, error bodies,
the numbers of their limits, headers) to themselves.
"""

from __future__ import annotations

from crm_qbo_plugin.apiclient.retry import RetryPolicy

__all__ = ["RetryPolicy"]
