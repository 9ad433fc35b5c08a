"""``python -m xero_sandbox.bench``: how long one 1,000-contact page takes, over real HTTP.

Seeds ``--contacts`` (1,000) contacts through the API (PUT arrays of 50), then times ``GET /Contacts?page=1&
pageSize=1000`` and prints the median and p95 in milliseconds. A figure, never an assertion.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time

import requests

from xero_sandbox.app import create_app
from xero_sandbox.server import serve_in_thread


def run(contacts: int = 1000, rounds: int = 30) -> dict[str, float]:
    with serve_in_thread(create_app()) as url:
        session = requests.Session()
        tenant = session.post(f"{url}/_sandbox/organisations",
                              json={"limits": {"enabled": False}}, timeout=10).json()["tenant_id"]
        session.post(f"{url}/_sandbox/apps", json={"client_id": "BENCH", "redirect_uris": []},
                     timeout=10)
        token = session.post(f"{url}/_sandbox/connect", json={"client_id": "BENCH"},
                             timeout=10).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}", "xero-tenant-id": tenant}
        seeding = time.perf_counter()
        for start in range(0, contacts, 50):
            batch = [{"Name": f"Customer {n:05d}", "EmailAddress": f"c{n}@example.test",
                      "ContactNumber": f"CRM-{n}", "FirstName": "Ann", "LastName": f"Lee {n}"}
                     for n in range(start, min(start + 50, contacts))]
            answer = session.put(f"{url}/api.xro/2.0/Contacts", json={"Contacts": batch},
                                 headers=headers, timeout=30)
            answer.raise_for_status()
        seed_s = time.perf_counter() - seeding
        timings = []
        for _ in range(rounds):
            began = time.perf_counter()
            answer = session.get(f"{url}/api.xro/2.0/Contacts",
                                 params={"page": 1, "pageSize": min(contacts, 1000)},
                                 headers=headers,
                                 timeout=30)
            answer.raise_for_status()
            timings.append((time.perf_counter() - began) * 1000)
            if len(answer.json()["Contacts"]) != min(contacts, 1000):
                raise RuntimeError("the page came back short")
        timings.sort()
        return {"contacts": min(contacts, 1000), "median_ms": statistics.median(timings),
                "p95_ms": timings[int(len(timings) * 0.95) - 1], "bytes": len(answer.content),
                "seed_per_s": contacts / seed_s}


def main() -> None:
    parser = argparse.ArgumentParser(prog="xero_sandbox.bench")
    parser.add_argument("--contacts", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    result = run(args.contacts, args.rounds)
    print(f"GET /Contacts page of {result['contacts']:.0f} ({result['bytes']:.0f} bytes) over HTTP: "
          f"median {result['median_ms']:.1f} ms, p95 {result['p95_ms']:.1f} ms; "
          f"seeded by PUT arrays of 50 at {result['seed_per_s']:.0f} contacts/s")


if __name__ == "__main__":
    main()
