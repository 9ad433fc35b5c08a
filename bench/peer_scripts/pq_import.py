"""python-quickbooks 0.9.12 import loop (the library's documented STARTPOSITION/MAXRESULTS paging).

Run inside the peer's venv: pq_import.py REALM ACCESS_TOKEN. Reads every Customer and Invoice,
1000 per page, into a counting sink; prints one JSON line with counts, wall, CPU and peak RSS.
"""

import json
import resource
import sys
import time

from quickbooks import QuickBooks
from quickbooks.objects.customer import Customer
from quickbooks.objects.invoice import Invoice


class StaticAuth:
    """A duck-typed auth client with a valid access token: python-quickbooks makes no token call."""

    def __init__(self, token):
        self.environment = "production"
        self.access_token = token
        self.refresh_token = "unused"
        self.client_id = "bench"


def main():
    realm, token = sys.argv[1], sys.argv[2]
    started = time.perf_counter()
    client = QuickBooks(auth_client=StaticAuth(token), refresh_token="unused", company_id=realm, minorversion=75)
    counts: dict[str, int] = {}
    ids: dict[str, int] = {}
    for entity in (Customer, Invoice):
        start = 1
        seen: set[str] = set()
        while True:
            page = entity.query(f"SELECT * FROM {entity.qbo_object_name} STARTPOSITION {start} MAXRESULTS 1000", qb=client)
            seen.update(str(obj.Id) for obj in page)
            counts[entity.qbo_object_name] = counts.get(entity.qbo_object_name, 0) + len(page)
            if len(page) < 1000:
                break
            start += 1000
        ids[entity.qbo_object_name] = len(seen)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"records": sum(counts.values()), "counts": counts, "distinct": ids,
                      "wall_s": time.perf_counter() - started, "cpu_s": usage.ru_utime + usage.ru_stime,
                      "peak_rss_mb": usage.ru_maxrss / 1024.0}))


if __name__ == "__main__":
    main()
