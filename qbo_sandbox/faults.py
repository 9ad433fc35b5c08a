"""Injected faults: answer chosen requests with an error, add latency, or drop the connection.

A rule matches on path (substring or regular expression), optional method and realm, and fires
``times`` times or with a ``probability``. Rules are checked in the order they were added.

A rule whose method is ``BATCH_ITEM`` never answers a request: it answers the matching items of
a ``/batch`` instead (path ``/batch/<entity>``, e.g. ``/batch/invoice``) with its ``code``'s Fault,
as QBO answers one item of a batch with a Fault while the others succeed.
"""

from __future__ import annotations

import itertools
import json
import random
import re
import threading
from dataclasses import dataclass
from typing import Any

from qbo_sandbox.errors import QBOError


class FaultSpecError(ValueError):
    """A bad ``POST /_sandbox/faults`` payload."""


@dataclass
class FaultRule:
    id: str
    path: str
    pattern: re.Pattern[str] | None
    method: str | None
    realm: str | None
    status: int | None
    body: bytes
    content_type: str
    latency_ms: float
    reset: bool
    times: int | None
    probability: float | None
    fired: int = 0

    def matches(self, method: str, path: str, realm: str | None) -> bool:
        if self.method and self.method != method.upper():
            return False
        if self.realm and self.realm != realm:
            return False
        if self.path in path:
            return True
        return bool(self.pattern and self.pattern.search(path))

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "path": self.path, "method": self.method, "realm": self.realm,
            "status": self.status, "latency_ms": self.latency_ms, "reset": self.reset,
            "times": self.times, "probability": self.probability, "fired": self.fired,
        }


BATCH_ITEM = "BATCH_ITEM"


class FaultInjector:
    """The active fault rules; thread-safe."""

    def __init__(self, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._ids = itertools.count(1)
        self._random = random.Random(seed)  # noqa: S311 - not for security

    def add(self, spec: dict[str, Any], fault_time: str) -> FaultRule:
        path = spec.get("path")
        if not isinstance(path, str) or not path:
            raise FaultSpecError("path is required (a substring or regular expression)")
        try:
            pattern: re.Pattern[str] | None = re.compile(path)
        except re.error:
            pattern = None
        status = spec.get("status")
        code = spec.get("code")
        body: bytes = b""
        content_type = str(spec.get("content_type") or "application/json")
        if code is not None:
            code_int = int(code)
            severe = code_int >= 10000
            err = QBOError(
                code_int,
                str(spec.get("message") or ("An application error has occurred while processing "
                                             "your request" if severe else "Injected fault")),
                str(spec.get("detail") or f"Injected fault {code_int}"),
                fault_type="SystemFault" if severe else "ValidationFault",
            )
            status = int(status or (500 if severe else 400))
            body = json.dumps({"Fault": err.fault(), "time": fault_time}).encode()
        elif status is not None:
            raw = spec.get("body", "")
            if isinstance(raw, (dict, list)):
                body = json.dumps(raw).encode()
            else:
                body = str(raw).encode()
                if "content_type" not in spec:
                    content_type = "text/plain"
            status = int(status)
        reset = bool(spec.get("reset", False))
        latency = float(spec.get("latency_ms", 0) or 0)
        if status is None and not reset and latency <= 0:
            raise FaultSpecError("give status (+ body), code, latency_ms or reset")
        times = spec.get("times")
        probability = spec.get("probability")
        if probability is not None and not 0 <= float(probability) <= 1:
            raise FaultSpecError("probability must be between 0 and 1")
        method = spec.get("method")
        rule = FaultRule(
            id=str(next(self._ids)), path=path, pattern=pattern,
            method=str(method).upper() if method else None,
            realm=str(spec["realm"]) if spec.get("realm") else None,
            status=status, body=body, content_type=content_type, latency_ms=latency,
            reset=reset, times=int(times) if times is not None else None,
            probability=float(probability) if probability is not None else None,
        )
        with self._lock:
            self._rules.append(rule)
        return rule

    def match(self, method: str, path: str, realm: str | None) -> FaultRule | None:
        """The first rule that fires for this request (consuming one of its ``times``)."""
        if not self._rules:
            return None
        with self._lock:
            for rule in self._rules:
                if rule.times is not None and rule.fired >= rule.times:
                    continue
                if not rule.matches(method, path, realm):
                    continue
                if rule.probability is not None and self._random.random() >= rule.probability:
                    continue
                rule.fired += 1
                return rule
        return None

    def batch_item_fault(self, entity: str, realm: str | None) -> dict[str, Any] | None:
        """The Fault of the first ``BATCH_ITEM`` rule that fires for a batch item on `entity`."""
        rule = self.match(BATCH_ITEM, f"/batch/{entity.lower()}", realm)
        if rule is None or not rule.body:
            return None
        fault = json.loads(rule.body).get("Fault")
        return fault if isinstance(fault, dict) else None

    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def remove(self, rule_id: str) -> bool:
        with self._lock:
            before = len(self._rules)
            self._rules = [r for r in self._rules if r.id != rule_id]
            return len(self._rules) != before

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()
