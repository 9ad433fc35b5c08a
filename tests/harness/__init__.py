"""The fault harness: the product's real processes (sandbox, Redis, web, workers, scheduler) on
loopback, a randomized two-way workload, faults (SIGKILL, SIGSTOP/SIGCONT, restarts, the sandbox's
injected errors, latency, resets, 429 storms and outages) and the final check (`crm-qbo reconcile`
for every tenant, duplicates and lost records counted). `python -m tests.harness.soak --help`."""
