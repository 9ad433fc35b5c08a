"""How fast is qbo_sandbox? Reads per second (GET customer by id) and a 1000-customer query page.

Run: ``PYTHONPATH=. .venv/bin/python bench/sandbox_speed.py [--threads 8] [--seconds 5]``. Starts
``python -m qbo_sandbox`` in its own process (so client threads do not share its GIL), with
throttling switched off so the numbers measure the emulator, not QBO's limits.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import subprocess
import sys
import threading
import time

import requests


def _start_server() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "qbo_sandbox", "--port", "0", "--quiet"],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    return proc, line.split()[-1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    proc, url = _start_server()
    try:
        realm = requests.post(f"{url}/_sandbox/companies", json={
            "name": "Bench", "limits": {"enabled": False}, "name_conflicts": False}).json()["realmId"]
        token = requests.post(f"{url}/_sandbox/tokens", json={"realm_id": realm}).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        v3 = f"{url}/v3/company/{realm}"
        session = requests.Session()
        started = time.perf_counter()
        for chunk in range(0, 1000, 30):
            items = [{"bId": str(i), "operation": "create",
                      "Customer": {"DisplayName": f"Customer {i:04d}",
                                   "PrimaryEmailAddr": {"Address": f"c{i}@example.com"},
                                   "BillAddr": {"Line1": f"{i} Main St", "City": "Springfield"}}}
                     for i in range(chunk, min(chunk + 30, 1000))]
            resp = session.post(f"{v3}/batch", json={"BatchItemRequest": items}, headers=headers)
            assert resp.status_code == 200, resp.text
        print(f"seeded 1000 customers via 34 batches in {time.perf_counter() - started:.2f} s")

        page_times = []
        for _ in range(5):
            t0 = time.perf_counter()
            resp = session.get(f"{v3}/query", headers=headers,
                               params={"query": "select * from Customer maxresults 1000",
                                       "minorversion": "75"})
            page_times.append(time.perf_counter() - t0)
            assert len(resp.json()["QueryResponse"]["Customer"]) == 1000
        print(f"query page of 1000 customers: median {statistics.median(page_times) * 1000:.1f} ms "
              f"({len(resp.content) / 1024:.0f} KiB)")
        t0 = time.perf_counter()
        resp = session.get(f"{v3}/query", headers=headers, params={
            "query": "select * from Customer where PrimaryEmailAddr = 'c777@example.com'"})
        print(f"filtered query over 1000 customers: {(time.perf_counter() - t0) * 1000:.1f} ms")

        count = 0
        lock = threading.Lock()
        stop = time.perf_counter() + args.seconds

        def reader(offset: int) -> None:
            nonlocal count
            own = requests.Session()
            done = 0
            i = offset
            while time.perf_counter() < stop:
                r = own.get(f"{v3}/customer/{i % 1000 + 1}", headers=headers,
                            params={"minorversion": "75"})
                assert r.status_code == 200
                done += 1
                i += 7
            with lock:
                count += done

        threads = [threading.Thread(target=reader, args=(n,)) for n in range(args.threads)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - t0
        print(f"reads (GET customer by id, {args.threads} client threads): "
              f"{count / elapsed:.0f} req/s")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()
