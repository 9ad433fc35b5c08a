"""Injected faults: answer chosen requests with a 5xx, a 429, a token error, added latency or a
dropped connection.

A rule matches on path (substring or regular expression), optional method and tenant, and fires
``times`` times or with a ``probability``. Rules are checked in the order they were added.
"""

from __future__ import annotations

import itertools
import json
import random
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from xero_sandbox.identity import problem

TOKEN_ERRORS = {
    "expired": "TokenExpired: token expired at 01/01/2026 00:00:00",
    "invalid": "AuthenticationUnsuccessful",
    "scope": "AuthorizationUnsuccessful",
}


class FaultSpecError(ValueError):
    """A bad ``POST /_sandbox/faults`` payload."""


@dataclass
class FaultRule:
    id: str
    spec: dict[str, Any]
    path: str
    pattern: re.Pattern[str] | None
    method: str | None
    tenant: str | None
    status: int | None
    body: bytes
    content_type: str
    headers: dict[str, str]
    latency_ms: float
    reset: bool
    times: int | None
    probability: float | None
    fired: int = 0
    kind: str = field(default="status")

    def matches(self, method: str, path: str, tenant: str | None) -> bool:
        if self.method and self.method != method.upper():
            return False
        if self.tenant and (tenant or "").lower() != self.tenant:
            return False
        return self.path in path or bool(self.pattern and self.pattern.search(path))

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, **self.spec, "fired": self.fired}


class FaultInjector:
    def __init__(self, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._ids = itertools.count(1)
        self._random = random.Random(seed)  # noqa: S311 - not for security

    def add(self, spec: dict[str, Any]) -> FaultRule:
        path = spec.get("path", "/api.xro/")
        if not isinstance(path, str) or not path:
            raise FaultSpecError("path must be a substring or regular expression")
        try:
            pattern: re.Pattern[str] | None = re.compile(path)
        except re.error:
            pattern = None
        status: int | None = None
        body = b""
        content_type = "application/json"
        headers: dict[str, str] = {}
        kind = "latency"
        if spec.get("rate_limit"):
            kind, status = "rate_limit", 429
            problem_name = str(spec["rate_limit"])
            if problem_name not in ("minute", "day", "appminute", "concurrent"):
                raise FaultSpecError("rate_limit must be minute, day, appminute or concurrent")
            headers = {"Retry-After": str(int(spec.get("retry_after", 1))),
                       "X-Rate-Limit-Problem": problem_name}
            content_type = "text/plain"
        elif spec.get("token_error"):
            kind, status = "token_error", 401
            detail = TOKEN_ERRORS.get(str(spec["token_error"]))
            if detail is None:
                raise FaultSpecError(f"token_error must be one of {sorted(TOKEN_ERRORS)}")
            body = json.dumps(problem(401, detail)).encode()
        elif spec.get("status") is not None:
            kind, status = "status", int(spec["status"])
            if not 400 <= status <= 599:
                raise FaultSpecError("status must be 4xx or 5xx")
            raw = spec.get("body", "")
            if isinstance(raw, (dict, list)):
                body = json.dumps(raw).encode()
            else:
                body = str(raw).encode()
                content_type = str(spec.get("content_type") or "text/plain")
            for key, value in (spec.get("headers") or {}).items():
                headers[str(key)] = str(value)
        reset = bool(spec.get("reset", False))
        if reset:
            kind = "reset"
        latency = float(spec.get("latency_ms", 0) or 0)
        if status is None and not reset and latency <= 0:
            raise FaultSpecError("give status (+ body), rate_limit, token_error, latency_ms or reset")
        probability = spec.get("probability")
        if probability is not None and not 0 <= float(probability) <= 1:
            raise FaultSpecError("probability must be between 0 and 1")
        method = spec.get("method")
        rule = FaultRule(
            id=str(next(self._ids)), spec=dict(spec), path=path, pattern=pattern,
            method=str(method).upper() if method else None,
            tenant=str(spec["tenant_id"]).lower() if spec.get("tenant_id") else None,
            status=status, body=body, content_type=content_type, headers=headers,
            latency_ms=latency, reset=reset,
            times=int(spec["times"]) if spec.get("times") is not None else None,
            probability=float(probability) if probability is not None else None, kind=kind)
        with self._lock:
            self._rules.append(rule)
        return rule

    def match(self, method: str, path: str, tenant: str | None) -> FaultRule | None:
        if not self._rules:
            return None
        with self._lock:
            for rule in self._rules:
                if rule.times is not None and rule.fired >= rule.times:
                    continue
                if not rule.matches(method, path, tenant):
                    continue
                if rule.probability is not None and self._random.random() >= rule.probability:
                    continue
                rule.fired += 1
                return rule
        return None

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
