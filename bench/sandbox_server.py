"""The benchmark's sandbox process: build ``qbo_sandbox.create_app``, seed companies in-process, serve.

Seeding 100,000 invoices through HTTP would take longer than the benchmark itself, so this launcher
creates each company through the sandbox's own control API (a Flask test client, same code path)
and then fills it with the sandbox's own ``Operations`` (the code every REST write runs), dated
``seed_age_days`` in the past so a later CDC poll does not see the seed as fresh changes. Only then
does it listen; the first stdout line is JSON: ``{"url": ..., "realms": [...]}``.

Run: ``python -m bench.sandbox_server --spec spec.json [--latency-ms 150] [--clock-speed 10]``.
The spec: ``{"companies": [{"name", "customers", "invoices", "limits": {...}, "seed_age_days"}]}``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from datetime import timedelta
from decimal import Decimal
from typing import Any

from werkzeug.serving import make_server

from qbo_sandbox.app import create_app, get_sandbox
from qbo_sandbox.clock import Clock
from qbo_sandbox.operations import Operations

SERVICE_ITEM = "1"  # the seeded "Services" item


def customer_body(index: int) -> dict[str, Any]:
    """Customer number `index` of a seeded company (also what the peers and checks expect)."""
    return {
        "DisplayName": f"Bench Customer {index:06d}",
        "GivenName": "Bench",
        "FamilyName": f"Customer {index:06d}",
        "CompanyName": f"Bench Co {index:06d}",
        "PrimaryEmailAddr": {"Address": f"customer{index:06d}@bench.example.com"},
        "PrimaryPhone": {"FreeFormNumber": f"+1 555 {index % 10000:04d}"},
        "BillAddr": {"Line1": f"{index} Main St", "City": "Springfield", "PostalCode": "12345"},
    }


def invoice_body(index: int, customer_id: str) -> dict[str, Any]:
    """Invoice number `index`: one to three service lines, so pages carry realistic line data."""
    lines = []
    for line in range(1 + index % 3):
        qty = Decimal(1 + (index + line) % 5)
        price = Decimal(10 + (index * 7 + line) % 90) + Decimal("0.50")
        lines.append({
            "DetailType": "SalesItemLineDetail",
            "Amount": qty * price,
            "Description": f"Bench work {line + 1}",
            "SalesItemLineDetail": {"ItemRef": {"value": SERVICE_ITEM}, "Qty": qty, "UnitPrice": price},
        })
    return {"CustomerRef": {"value": customer_id}, "Line": lines}


def seed_company(app: Any, spec: dict[str, Any]) -> str:
    sandbox = get_sandbox(app)
    payload = {"name": spec.get("name", "Bench Company"), "limits": spec.get("limits") or {"enabled": False}}
    answer = app.test_client().post("/_sandbox/companies", json=payload)
    if answer.status_code != 201:
        raise SystemExit(f"the sandbox refused the company spec: {answer.get_data(as_text=True)}")
    realm = str(answer.get_json()["realmId"])
    company = sandbox.companies.get(realm)
    assert company is not None
    when = sandbox.clock.now() - timedelta(days=float(spec.get("seed_age_days", 2)))
    ops = Operations(company, when, None)  # no notify: the seed sends no webhooks
    customers = int(spec.get("customers", 0))
    ids = [str(ops.create("Customer", customer_body(i))["Id"]) for i in range(customers)]
    for i in range(int(spec.get("invoices", 0))):
        if not ids:
            raise SystemExit("invoices need at least one customer in the spec")
        ops.create("Invoice", invoice_body(i, ids[i % len(ids)]))
    return realm


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", required=True, help="JSON file with the companies to seed")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--clock-speed", type=float, default=1.0)
    args = parser.parse_args(argv)
    with open(args.spec, encoding="utf-8") as handle:
        spec = json.load(handle)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    app = create_app(Clock(speed=args.clock_speed), latency_ms=args.latency_ms)
    started = time.perf_counter()
    realms = [seed_company(app, company) for company in spec.get("companies", [])]
    seeded = time.perf_counter() - started
    server = make_server("127.0.0.1", args.port, app, threaded=True)
    server.daemon_threads = True  # type: ignore[attr-defined]
    url = f"http://127.0.0.1:{server.server_port}"
    print(json.dumps({"url": url, "realms": realms, "seed_seconds": round(seeded, 3)}), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
