"""A short soak (part of `make test`): the real processes (both sandboxes, Redis, waitress web, three
workers, two schedulers) under a randomized two-way workload for two QuickBooks tenants and a Xero
tenant (tenants disconnected and reconnected among it) with every kind of fault injected, then
settle and check: `crm-qbo reconcile` exits 0 for every QuickBooks tenant, the Xero books match the
CRM's record by record, no duplicate, nothing lost.
The long run is `make soak MINUTES=20` (python -m tests.harness.soak)."""

from __future__ import annotations

import pytest

from tests.harness.faults import ALL_KINDS
from tests.harness.soak import Options, run


@pytest.mark.postgres
@pytest.mark.timeout(1200)  # a settle that keeps making progress may run long; normally ~3 min
def test_a_short_soak_with_faults_ends_with_matching_books(database_url):
    report = run(Options(seconds=45, tenants=2, xero_tenants=1, workers=3, schedulers=2, seed=20260110, fault_every=3.0,
                         kinds=ALL_KINDS, settle_timeout=200, database_url=database_url, quiet=True,
                         disconnect_weight=2.0, min_operations=150, min_faults=8))
    assert report.problems() == [], report.summary()
    assert report.ok and report.settled
    assert (report.duplicates, report.lost) == (0, 0)
    assert set(report.reconcile.values()) == {0} and len(report.reconcile) == 3  # the Xero tenant's too
    # the Xero tenant did its share of the work and its books were compared, count by count
    xero = [counts for counts in report.counts.values() if counts.get("provider") == "xero"]
    assert len(xero) == 1 and len(report.counts) == 3
    assert xero[0]["xero_invoices"] >= 1 and xero[0]["crm_invoices"] >= 1
    assert {name: xero[0][name] for name in xero[0]["expected"]} == xero[0]["expected"]
    assert sum(report.operations.values()) >= 150
    # tenants were disconnected and reconnected mid-run; what they held was retried, none left
    assert report.connection_changes["disconnect"] >= 1 and report.connection_changes["reconnect"] >= 1
    assert report.still_held == []
    # ~15 faults are due in 45 s; a loaded machine fits fewer in 45 s and runs on until it has 8
    assert sum(report.faults.values()) >= 8
