"""The benchmark harness end to end at a tiny size: the sandbox process seeded by bench's launcher,
plugin work in real `crm-qbo worker` / `crm-qbo serve` processes, and every workload's correctness
check. Only correctness is asserted (never timings); the peers are not needed."""

from __future__ import annotations

from bench import floors, w1_import, w2_poll, w3_webhooks, w4_push
from bench.infra import stack
from bench.measure import purge_echoes


def test_bench_workloads_deliver_every_record_once(database_url: str, redis_url: str) -> None:
    with stack(database_url=database_url, redis_url=redis_url) as st:
        sandbox = st.start_sandbox([{"name": "W1", "customers": 50, "invoices": 30}, {"name": "W4"}])
        import_realm, push_realm = sandbox.realms

        imported = w1_import.run(st, import_realm, 50, 30, echo_drain=False)
        assert imported["correct"] == {"ok": True, "crm_contacts": 50, "crm_invoices": 30, "contact_links": 50,
                                       "invoice_links": 30, "run_status": "succeeded",
                                       "run_errors": imported["correct"]["run_errors"]}
        assert imported["throttled_429"] == 0
        assert imported["calls"] == 4  # a COUNT and one page per entity
        purge_echoes(st)

        polled = w2_poll.run(st, imported["tenant"], import_realm, 4)
        assert polled["correct"]["ok"], polled["correct"]
        assert polled["correct"]["inbox"] == {"applied": 4}
        assert polled["by_endpoint"] == {"cdc": 1}
        purge_echoes(st)

        burst = w3_webhooks.run(st, imported["tenant"], import_realm, 20, 1.0, skip_first=4)
        assert burst["statuses"] == {"200": 20}
        assert burst["correct"]["ok"], burst["correct"]
        assert burst["correct"]["inbox"] == {"applied": 20}
        assert burst["correct"]["deliveries"] == 20
        purge_echoes(st)

        pushed = w4_push.run(st, push_realm, 20, 2, warmup_s=60.0)
        assert pushed["correct"]["ok"], pushed["correct"]
        assert pushed["correct"]["qbo_invoices"] == 20
        assert pushed["correct"]["qbo_customers"] == 2
        assert pushed["throttled_429"] == 0


def test_floors_follow_qbo_limits() -> None:
    assert floors.import_calls(10_000, 10_000) == 22
    assert floors.import_calls(10_500, 9_999) == 21
    push = floors.push_floor(10_000, 1_000, call_s=0.0, throttled=True, speed=1.0)
    assert (push["batches"], push["calls"], push["wall_s"]) == (334, 1334, 501.0)
    assert floors.poll_floor(100) == {"calls": 1}


def test_bench_fair_peer_and_many_tenants_deliver_every_record_once(database_url: str, redis_url: str) -> None:
    """The fair import peer writes every record through the host once; W6 (tenants on 1 and 2
    workers, 2 web processes) imports, pushes and applies every webhook notice for every tenant."""
    from bench import w6_scale
    from bench.run import fair_peer

    with stack(database_url=database_url, redis_url=redis_url) as st:
        tenants = [{"name": f"W6 {n}", "customers": 5, "invoices": 5} for n in range(4)]
        sandbox = st.start_sandbox([{"name": "fair", "customers": 30, "invoices": 20}, *tenants])
        fair_realm, *w6_realms = sandbox.realms

        fair = fair_peer(st, fair_realm, 30, 20)
        assert fair["correct"] == {"ok": True, "crm_contacts": 30, "crm_invoices": 20}
        assert (fair["records"], fair["counts"]) == (50, {"Customer": 30, "Invoice": 20})
        assert (fair["calls"], fair["by_endpoint"]) == (2, {"query": 2})

        found = w6_scale.run(st, [w6_realms[:2], w6_realms[2:]], (1, 2), 5, 5, 10, 3)
        assert [run["workers"] for run in found["runs"]] == [1, 2]
        for run in found["runs"]:
            assert run["correct"] == {"ok": True, "tenants_ok": 2}
            assert run["webhooks"]["statuses"] == {"200": 6}
            assert run["import_push"]["records"] == 2 * (5 + 5 + 10 + 1)
            assert run["latency_events"] == 2 * 10  # every pushed invoice's event → QBO write


def test_bench_xero_workloads_deliver_every_record_once(database_url: str, redis_url: str) -> None:
    """XI imports every contact and invoice made in Xero once; XP pushes every invoice and contact
    to Xero once, within Xero's limits; XW's notices bring every payment made in Xero to its CRM
    invoice; both peers read and write the same records."""
    from bench import xero_workloads

    with stack(database_url=database_url, redis_url=redis_url) as st:
        found = xero_workloads.run_all(st, invoices=20, notices=8, burst_seconds=1.0, workers_count=2, speed=10.0,
                                       with_peers=True, log=lambda _message: None, imports=30)
    xi, xp, xw = found["workloads"]["XI"], found["workloads"]["XP"], found["workloads"]["XW"]["plugin"]
    assert xi["plugin"]["correct"] == {"ok": True, "crm_contacts": 30, "crm_invoices": 30, "contact_links": 30,
                                       "invoice_links": 30, "run_status": "succeeded",
                                       "run_errors": xi["plugin"]["correct"]["run_errors"]}
    assert xi["plugin"]["correct"]["run_errors"] in ("[]", [])  # JSON text on SQLite, a list on PostgreSQL
    assert (xi["plugin"]["calls"], xi["floor"]["calls"]) == (2, 2)  # one short page per entity
    for peer in ("xero-python", "pyxero"):
        assert (xi[peer]["records"], xi[peer]["calls"]) == (60, 2), xi[peer]
    assert xp["plugin"]["correct"] == {"ok": True, "xero_invoices": 20, "distinct_numbers": 20, "xero_contacts": 2,
                                       "outbox": xp["plugin"]["correct"]["outbox"], "invoice_links": 20,
                                       "contact_links": 2}
    assert xp["plugin"]["throttled_429"] == 0
    assert (xp["floor"]["calls"], xp["floor_one_per_call"]["calls"]) == (2, 22)
    for peer in ("xero-python", "pyxero"):
        assert (xp[peer]["records"], xp[peer]["calls"], xp[peer]["throttled_429"]) == (22, 2, 0), xp[peer]
    assert xw["statuses"] == {"200": 8}
    assert xw["correct"] == {"ok": True, "paid_in_crm": 8}


def test_xero_floor_follows_xero_limits() -> None:
    from bench.xero_workloads import floor

    assert floor([100, 1_000], call_s=0.0, speed=1.0) == {"calls": 22, "records_per_call": 50,
                                                          "xero_minutes": 0.367, "wall_s": 0.0}
    # Xero's minute rolls: call 61 goes when call 1 has left it, so 1,100 calls wait 18 whole
    # minutes (6 s each at speed 10) and the last 20 go in 4 rounds of 5.
    one = floor([100, 1_000], call_s=0.01, speed=10.0, per_call=1)
    assert (one["calls"], one["wall_s"]) == (1_100, 18 * 6.0 + 4 * 0.01)
    assert floor([320, 3_200], call_s=0.01, speed=1.0)["wall_s"] == 60.0 + 3 * 0.01  # 71 calls: 60, then 11
