"""Someone working in Xero for a soak tenant: their own app's token (the Xero sandbox's control API
connects it to the organisation), an Idempotency-Key on every write (so a retry after a fault never
writes twice), retries through injected faults and Xero's 429s (waiting out Retry-After)."""

from __future__ import annotations

import time
import uuid
from decimal import Decimal
from typing import Any

import requests

from tests.harness.stack import XERO_USER_CLIENT_ID, Stack


class XeroUnavailable(Exception):
    """Xero did not answer (a fault is in progress); the operation was not done."""


class XeroRefused(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body[:300]}")
        self.status, self.body = status, body


class XeroUser:
    def __init__(self, stack: Stack, org: str) -> None:
        self.stack, self.org = stack, org
        self.token = ""

    def _refresh(self) -> None:
        self.token = self.stack.xero_post("/_sandbox/connect", {
            "client_id": XERO_USER_CLIENT_ID, "tenant_ids": [self.org]})["access_token"]

    def call(self, method: str, path: str, body: Any = None, params: dict[str, str] | None = None,
             attempts: int = 6) -> dict[str, Any]:
        if not self.token:
            self._refresh()
        headers = {"xero-tenant-id": self.org, "Accept": "application/json"}
        if method in ("PUT", "POST"):
            headers["Idempotency-Key"] = uuid.uuid4().hex  # one per operation, kept across its retries
        last = ""
        for attempt in range(attempts):
            try:
                answer = requests.request(method, f"{self.stack.xero_url}/api.xro/2.0/{path}", json=body, params=params,
                                          headers={**headers, "Authorization": f"Bearer {self.token}"}, timeout=30)
            except requests.RequestException as exc:
                last = type(exc).__name__
            else:
                if answer.status_code == 401:
                    self._refresh()
                    last = "401"
                elif answer.status_code == 429:
                    last = "HTTP 429"
                    time.sleep(min(5.0, float(answer.headers.get("Retry-After") or 1)))
                    continue
                elif answer.status_code >= 500:
                    last = f"HTTP {answer.status_code}"
                elif answer.status_code != 200:
                    raise XeroRefused(answer.status_code, answer.text)
                else:
                    data: dict[str, Any] = answer.json(parse_float=Decimal)
                    return data
            time.sleep(min(4.0, 0.2 * 2 ** attempt))
        raise XeroUnavailable(f"Xero {method} {path}: {last}")

    def invoice(self, invoice_id: str) -> dict[str, Any]:
        return dict(self.call("GET", f"Invoices/{invoice_id}")["Invoices"][0])

    def pay(self, invoice_id: str, amount: Decimal) -> dict[str, Any]:
        return dict(self.call("PUT", "Payments", {"Payments": [{
            "Invoice": {"InvoiceID": invoice_id}, "Account": {"Code": "090"}, "Amount": str(amount),
            "Date": time.strftime("%Y-%m-%d", time.gmtime())}]})["Payments"][0])

    def all(self, collection: str, params: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """Every record of a collection, page by page (1,000 at a time)."""
        rows: list[dict[str, Any]] = []
        page = 1
        while True:
            batch = list(self.call("GET", collection, params={**(params or {}), "page": str(page),
                                                               "pageSize": "1000"})[collection])
            rows += batch
            if len(batch) < 1000:
                return rows
            page += 1
