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
