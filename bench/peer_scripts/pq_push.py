"""python-quickbooks 0.9.12 push: new customers and invoices, with save() or batch_create().

Run inside the peer's venv: pq_push.py REALM ACCESS_TOKEN MODE INVOICES RUN_TAG, MODE = save | batch.
One new customer per ten invoices, customers first. save(): one POST per object with a request id
(python-quickbooks' documented way to make retries safe); batch: batch_create() (30 per /batch, one
after another). The library has no 429 handling: the first error stops the run, and that is reported.
"""

import json
import resource
import sys
import time
import uuid
from decimal import Decimal

from quickbooks import QuickBooks
from quickbooks.batch import batch_create
from quickbooks.objects.base import Ref
from quickbooks.objects.customer import Customer
from quickbooks.objects.detailline import SalesItemLine, SalesItemLineDetail
from quickbooks.objects.invoice import Invoice


class StaticAuth:
    def __init__(self, token):
        self.environment = "production"
        self.access_token = token
        self.refresh_token = "unused"
        self.client_id = "bench"


def customer(tag, index):
    obj = Customer()
    obj.DisplayName = f"Peer {tag} Customer {index:06d}"
    obj.GivenName = "Peer"
    obj.FamilyName = f"Customer {index:06d}"
    return obj


def invoice(customer_id, index):
    detail = SalesItemLineDetail()
    detail.ItemRef = Ref()
    detail.ItemRef.value = "1"
    detail.Qty = 1 + index % 5
    detail.UnitPrice = 10 + index % 90
    line = SalesItemLine()
    line.Amount = float(Decimal(detail.Qty) * Decimal(detail.UnitPrice))
    line.Description = "Peer work"
    line.SalesItemLineDetail = detail
    obj = Invoice()
    obj.CustomerRef = Ref()
    obj.CustomerRef.value = customer_id
    obj.Line = [line]
    return obj


def main():
    realm, token, mode, total, tag = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
    started = time.perf_counter()
    client = QuickBooks(auth_client=StaticAuth(token), refresh_token="unused", company_id=realm, minorversion=75)
    created = {"Customer": 0, "Invoice": 0}
    error = None
    customers = [customer(tag, i) for i in range((total + 9) // 10)]
    try:
        if mode == "save":
            ids = []
            for obj in customers:
                obj.save(qb=client, request_id=uuid.uuid4().hex)
                ids.append(obj.Id)
                created["Customer"] += 1
            for i in range(total):
                invoice(ids[i // 10], i).save(qb=client, request_id=uuid.uuid4().hex)
                created["Invoice"] += 1
        else:
            result = batch_create(customers, qb=client)
            created["Customer"] = len(result.successes)
            if result.faults:
                raise RuntimeError(f"{len(result.faults)} customer creates failed in batch")
            ids = [obj.Id for obj in result.successes]
            result = batch_create([invoice(ids[i // 10], i) for i in range(total)], qb=client)
            created["Invoice"] = len(result.successes)
            if result.faults:
                raise RuntimeError(f"{len(result.faults)} invoice creates failed in batch")
    except Exception as exc:  # the library raises on a 429 (no retry): report and stop
        error = f"{type(exc).__name__}: {str(exc)[:200]}"
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"created": created, "error": error, "wall_s": time.perf_counter() - started,
                      "cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_mb": usage.ru_maxrss / 1024.0}))


if __name__ == "__main__":
    main()
