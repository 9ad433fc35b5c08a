"""Faults injected while the workload runs: process crashes (SIGKILL) and restarts, starvation
(SIGSTOP … SIGCONT), Redis lost with everything in it, and the sandbox's own faults (5xx, latency,
dropped connections, 429 storms, a company's outage, the token endpoint failing, every access token
expiring at once), and the Xero sandbox's for the Xero tenants (429 storms with Retry-After,
5xx, an organisation's outage, every access token of the plugin's Xero app expiring). Each fault that lasts is undone by `tick()` when due; `clear()` undoes all.

The sandboxes themselves are never SIGKILLed: they keep the QuickBooks companies (Xero organisations) in memory, so killing it
would lose QuickBooks' books (Intuit does not lose them either); it is starved instead.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import requests

from tests.harness.stack import XERO_CLIENT_ID, Proc, Stack

THROTTLE_XML = (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><IntuitResponse><Fault type="ThrottleExceeded">'
                b'<Error code="3001"><Message>message=ThrottleExceeded; errorCode=003001; statusCode=429</Message>'
                b'<Detail>The request limit was reached.</Detail></Error></Fault></IntuitResponse>')

ALL_KINDS = ("kill_worker", "stop_worker", "kill_web", "stop_web", "kill_scheduler", "kill_redis", "stop_sandbox",
             "sandbox_errors", "sandbox_latency", "sandbox_resets", "throttle_storm", "outage", "token_expiry",
             "token_endpoint_errors", "xero_throttle_storm", "xero_errors", "xero_outage", "xero_token_expiry")


@dataclass
class Pending:
    due: float
    undo: Callable[[], None]


@dataclass
class Faults:
    stack: Stack
    realms: list[str]
    rng: random.Random
    kinds: tuple[str, ...] = ALL_KINDS
    orgs: list[str] = field(default_factory=list)  # the Xero tenants' organisations
    counts: Counter[str] = field(default_factory=Counter)
    restarts: Counter[str] = field(default_factory=Counter)  # processes found dead and restarted
    pending: list[Pending] = field(default_factory=list)
    down: set[str] = field(default_factory=set)  # processes deliberately kept down or stopped

    @property
    def crm_up(self) -> bool:
        return "web" not in self.down

    @property
    def qbo_up(self) -> bool:
        return "sandbox" not in self.down

    def later(self, seconds: float, undo: Callable[[], None]) -> None:
        self.pending.append(Pending(time.monotonic() + seconds, undo))

    def tick(self) -> None:
        now = time.monotonic()
        due = [p for p in self.pending if p.due <= now]
        self.pending = [p for p in self.pending if p.due > now]
        for item in due:
            item.undo()
        self.supervise()

    def supervise(self) -> None:
        """Restart what died on its own (as systemd or a container runtime would)."""
        for proc in list(self.stack.procs.values()):
            if proc.name not in self.down and not proc.alive():
                self.restarts[proc.name.split("-")[0]] += 1
                self.stack.restart(proc)

    def clear(self) -> None:
        for _ in range(3):  # a rule's removal waits for a starved sandbox to be resumed first
            due, self.pending = self.pending, []
            for item in due:
                item.undo()
        requests.delete(f"{self.stack.sandbox_url}/_sandbox/faults", timeout=30).raise_for_status()
        requests.delete(f"{self.stack.xero_url}/_sandbox/faults", timeout=30).raise_for_status()
        self.supervise()

    # -- injecting -------------------------------------------------------------------------------
    def inject(self, kind: str | None = None) -> str:
        kind = kind or self.rng.choice(self.kinds)
        getattr(self, kind)()
        self.counts[kind] += 1
        return kind

    def _pick(self, procs: list[Proc]) -> Proc | None:
        live = [p for p in procs if p.alive() and p.name not in self.down]
        return self.rng.choice(live) if live else None

    def _down_for(self, proc: Proc, seconds: float, stop: bool) -> None:
        self.down.add(proc.name)
        if stop:
            proc.pause()
        else:
            proc.kill()

        def undo() -> None:
            if stop:
                proc.resume()
            self.down.discard(proc.name)
            if not proc.alive():
                self.stack.restart(proc)

        self.later(seconds, undo)

    def kill_worker(self) -> None:
        proc = self._pick(self.stack.workers())
        if proc:
            self._down_for(proc, self.rng.uniform(0.2, 3.0), stop=False)

    def stop_worker(self) -> None:
        proc = self._pick(self.stack.workers())
        if proc:
            self._down_for(proc, self.rng.uniform(1.0, 8.0), stop=True)

    def kill_scheduler(self) -> None:
        proc = self._pick(self.stack.schedulers())
        if proc:
            self._down_for(proc, self.rng.uniform(0.5, 4.0), stop=False)

    def kill_web(self) -> None:
        proc = self.stack.procs["web"]
        if proc.name not in self.down:
            proc.kill()
            self.stack.start_web()

    def stop_web(self) -> None:
        proc = self.stack.procs["web"]
        if proc.name not in self.down:
            self._down_for(proc, self.rng.uniform(1.0, 5.0), stop=True)  # > 3 s: Intuit's ack deadline missed

    def kill_redis(self) -> None:
        proc = self.stack.procs["redis"]
        if proc.name not in self.down:
            proc.kill()  # the queue, locks, limiter windows and flags are gone with it
            self.stack.start_redis()

    def stop_sandbox(self) -> None:
        proc = self.stack.procs["sandbox"]
        if proc.name not in self.down:
            self._down_for(proc, self.rng.uniform(1.0, 4.0), stop=True)

    def _rule(self, seconds: float, **spec: object) -> None:
        if not self.qbo_up:
            return
        answer = requests.post(f"{self.stack.sandbox_url}/_sandbox/faults", json=spec, timeout=30)
        answer.raise_for_status()
        rule_id = answer.json()["id"]

        def undo() -> None:
            if not self.qbo_up:  # starved right now: remove the rule once it runs again
                self.later(0.5, undo)
                return
            requests.delete(f"{self.stack.sandbox_url}/_sandbox/faults/{rule_id}", timeout=30)

        self.later(seconds, undo)

    def sandbox_errors(self) -> None:
        self._rule(self.rng.uniform(3, 12), path="/v3/", code=10000, message="An application error has occurred",
                   probability=0.3)

    def sandbox_latency(self) -> None:
        self._rule(self.rng.uniform(3, 12), path="/v3/", latency_ms=self.rng.choice([500, 1500, 3500]), probability=0.5)

    def sandbox_resets(self) -> None:
        self._rule(self.rng.uniform(3, 10), path="/v3/", reset=True, probability=0.25)

    def throttle_storm(self) -> None:
        self._rule(self.rng.uniform(1, 4), path="/v3/", realm=self.rng.choice(self.realms), status=429,
                   body=THROTTLE_XML.decode(), content_type="application/xml", probability=0.8)

    def outage(self) -> None:
        self._rule(self.rng.uniform(5, 15), path="/v3/", realm=self.rng.choice(self.realms), status=503,
                   body="Service Unavailable", content_type="text/plain")

    def token_expiry(self) -> None:
        if self.qbo_up:  # every access token issued so far expires now (an hour of sandbox time)
            requests.post(f"{self.stack.sandbox_url}/_sandbox/clock", json={"advance_seconds": 3700},
                          timeout=30).raise_for_status()

    def token_endpoint_errors(self) -> None:
        self.token_expiry()
        self._rule(self.rng.uniform(2, 8), path="/oauth2/v1/tokens/bearer", status=503,
                   body='{"error":"temporarily_unavailable"}', probability=0.5)


    # -- Xero (no-ops without a Xero tenant) ---------------------------------------------------
    def _xero_rule(self, seconds: float, **spec: object) -> None:
        if not self.orgs:
            return
        answer = requests.post(f"{self.stack.xero_url}/_sandbox/faults", json={
            "path": "/api.xro/", "tenant_id": self.rng.choice(self.orgs), **spec}, timeout=30)
        answer.raise_for_status()
        rule_id = answer.json()["id"]
        self.later(seconds, lambda: requests.delete(f"{self.stack.xero_url}/_sandbox/faults/{rule_id}", timeout=30))

    def xero_throttle_storm(self) -> None:
        self._xero_rule(self.rng.uniform(1, 4), rate_limit=self.rng.choice(["minute", "concurrent"]),
                        retry_after=self.rng.choice([1, 2, 5]), probability=0.8)

    def xero_errors(self) -> None:
        self._xero_rule(self.rng.uniform(3, 10), status=self.rng.choice([500, 503]),
                        body={"Type": None, "Title": "An error occurred", "Status": 500}, probability=0.3)

    def xero_outage(self) -> None:
        self._xero_rule(self.rng.uniform(5, 15), status=503, body="Service Unavailable", content_type="text/plain")

    def xero_token_expiry(self) -> None:
        if self.orgs:  # every access token the plugin's Xero app holds expires now: refresh, rotated
            requests.post(f"{self.stack.xero_url}/_sandbox/tokens/expire", json={"client_id": XERO_CLIENT_ID},
                          timeout=30).raise_for_status()
