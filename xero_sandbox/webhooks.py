"""Outbound Xero webhooks: thin CONTACT/INVOICE CREATE/UPDATE events, signed with the app's
webhook key in ``x-xero-signature``, the intent-to-receive check, in-order delivery and retries.

Only apps connected to the organisation, with a webhook URL and a passed intent-to-receive check
(status ``OK``) get events. Events are grouped per app for ``aggregation_seconds`` (sandbox time)
and POSTed as ``{"events": [...], "firstEventSequence", "lastEventSequence", "entropy"}``. Only a
200 within 5 s acknowledges; a failure is retried at once, then every 15 minutes, and after 24
hours of failures the webhook is disabled (Xero's documented behaviour); later payloads wait
behind the failed one. Timing reads the sandbox clock, so ``clock.advance`` drives retries.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import logging
import random
import secrets
import string
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import requests

from xero_sandbox.clock import Clock
from xero_sandbox.identity import IdentityServer
from xero_sandbox.timefmt import event_date

TIMEOUT_SECONDS = 5.0
RETRY_SECONDS = 900
GIVE_UP_SECONDS = 86400
LOG_LIMIT = 2000
ITR_PAYLOADS = 4
COLLECTIONS = {"CONTACT": "Contacts", "INVOICE": "Invoices"}

logger = logging.getLogger(__name__)


def sign(body: bytes, webhook_key: str) -> str:
    """``x-xero-signature``: base64(HMAC-SHA256(webhook key, raw body))."""
    return base64.b64encode(hmac.new(webhook_key.encode(), body, hashlib.sha256).digest()).decode()


def verify(body: bytes, signature: str, webhook_key: str) -> bool:
    return hmac.compare_digest(sign(body, webhook_key), (signature or "").strip())


def _entropy() -> str:
    return "".join(secrets.choice(string.ascii_uppercase) for _ in range(20))


@dataclass
class Delivery:
    delivery_id: int
    client_id: str
    url: str
    body: bytes
    signature: str
    events: int
    created_at: datetime
    next_attempt_at: datetime
    attempts: int = 0
    first_failure_at: datetime | None = None
    status: str = "pending"  # pending | retrying | delivered | held (webhook disabled)
    last_error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"delivery_id": self.delivery_id, "client_id": self.client_id, "url": self.url,
                "events": self.events, "status": self.status, "attempts": self.attempts,
                "created_at": self.created_at.isoformat(),
                "next_attempt_at": self.next_attempt_at.isoformat(),
                "last_error": self.last_error, "signature": self.signature,
                "body": self.body.decode()}


@dataclass
class _Queue:
    buffer: list[dict[str, Any]] = field(default_factory=list)
    buffered_since: datetime | None = None
    deliveries: deque[Delivery] = field(default_factory=deque)
    sequence: int = 0


class WebhookSender:
    def __init__(self, clock: Clock, identity: IdentityServer, *,
                 aggregation_seconds: float = 1.0, poll_seconds: float = 0.2) -> None:
        self.clock = clock
        self.identity = identity
        self.aggregation_seconds = aggregation_seconds
        self.poll_seconds = poll_seconds
        self._lock = threading.RLock()
        self._deliver_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._session = requests.Session()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._queues: dict[str, _Queue] = {}
            self._log: deque[Delivery] = deque(maxlen=LOG_LIMIT)
            self._attempts: deque[dict[str, Any]] = deque(maxlen=LOG_LIMIT)
            self._itr: deque[dict[str, Any]] = deque(maxlen=LOG_LIMIT)

    def record(self, tenant_id: str, category: str, event: str, resource_id: str,
               when: datetime, api_base: str) -> None:
        """Queue an event for every connected app whose webhook is active."""
        payload = {"resourceUrl": f"{api_base}/api.xro/2.0/{COLLECTIONS[category]}/{resource_id}",
                   "resourceId": resource_id, "tenantId": tenant_id,
                   "tenantType": "ORGANISATION", "eventCategory": category,
                   "eventType": event, "eventDateUtc": event_date(when)}
        with self._lock:
            for app, _conn in self.identity.connected_apps(tenant_id):
                if not app.webhook_url or app.webhook_status != "OK":
                    continue
                queue = self._queues.setdefault(app.client_id, _Queue())
                if not queue.buffer:
                    queue.buffered_since = self.clock.now()
                queue.buffer.append(dict(payload))

    # ------------------------------------------------------------------ delivery

    def _seal(self, client_id: str, queue: _Queue, now: datetime) -> None:
        app = self.identity.apps.get(client_id)
        if app is None or not app.webhook_url or not queue.buffer:
            queue.buffer.clear()
            return
        first = queue.sequence + 1
        queue.sequence += len(queue.buffer)
        body = json.dumps({"events": queue.buffer, "firstEventSequence": first,
                           "lastEventSequence": queue.sequence, "entropy": _entropy()},
                          separators=(",", ":")).encode()
        delivery = Delivery(next(self._ids), client_id, app.webhook_url, body,
                            sign(body, app.webhook_key), len(queue.buffer), now, now)
        queue.deliveries.append(delivery)
        self._log.append(delivery)
        queue.buffer = []
        queue.buffered_since = None

    def deliver(self, force: bool = False) -> dict[str, int]:
        """Seal what has aggregated long enough (everything when forced) and send what is due."""
        delivered = failed = 0
        with self._deliver_lock:
            now = self.clock.now()
            with self._lock:
                for client_id, queue in self._queues.items():
                    if queue.buffer and (force or queue.buffered_since is None or
                                         (now - queue.buffered_since).total_seconds()
                                         >= self.aggregation_seconds):
                        self._seal(client_id, queue, now)
                queues = list(self._queues.items())
            for client_id, queue in queues:
                while queue.deliveries:
                    delivery = queue.deliveries[0]
                    app = self.identity.apps.get(client_id)
                    if app is None or app.webhook_status != "OK":
                        delivery.status = "held"
                        break
                    if delivery.next_attempt_at > now and not force:
                        break
                    if self._send(delivery):
                        delivered += 1
                        queue.deliveries.popleft()
                        continue
                    failed += 1
                    now = self.clock.now()
                    if delivery.first_failure_at is None:
                        delivery.first_failure_at = now
                        delivery.next_attempt_at = now  # Xero retries once at once
                    elif (now - delivery.first_failure_at).total_seconds() >= GIVE_UP_SECONDS:
                        app.webhook_status = "DISABLED"
                        delivery.status = "held"
                        break
                    else:
                        delivery.next_attempt_at = now + timedelta(seconds=RETRY_SECONDS)
                    delivery.status = "retrying"
                    break
        pending = sum(len(q.deliveries) + (1 if q.buffer else 0) for q in self._queues.values())
        return {"delivered": delivered, "failed": failed, "pending": pending}

    def _post(self, url: str, body: bytes, signature: str) -> tuple[int | None, str | None]:
        try:
            answer = self._session.post(url, data=body, timeout=TIMEOUT_SECONDS, headers={
                "Content-Type": "application/json; charset=utf-8", "x-xero-signature": signature,
                "User-Agent": "Xero-Webhooks-Sandbox"})
            return answer.status_code, None
        except requests.RequestException as exc:
            return None, type(exc).__name__

    def _send(self, delivery: Delivery) -> bool:
        delivery.attempts += 1
        status, error = self._post(delivery.url, delivery.body, delivery.signature)
        ok = status == 200
        delivery.last_error = None if ok else (error or f"HTTP {status}")
        if ok:
            delivery.status = "delivered"
        with self._lock:
            self._attempts.append({"delivery_id": delivery.delivery_id, "status": status,
                                   "error": error, "at": self.clock.now().isoformat()})
        return ok

    # ------------------------------------------------------------------ intent to receive

    def intent_to_receive(self, client_id: str) -> dict[str, Any]:
        """Xero's check: empty payloads, some signed right and some wrong; the endpoint must
        answer 200 to each right one and 401 to each wrong one. Passing activates the webhook."""
        app = self.identity.apps.get(client_id)
        if app is None or not app.webhook_url:
            raise KeyError(client_id)
        checks = [True, False] * (ITR_PAYLOADS // 2)
        random.shuffle(checks)
        results = []
        for correct in checks:
            body = json.dumps({"events": [], "firstEventSequence": 0, "lastEventSequence": 0,
                               "entropy": _entropy()}, separators=(",", ":")).encode()
            signature = sign(body, app.webhook_key) if correct else sign(body, secrets.token_hex(16))
            status, error = self._post(app.webhook_url, body, signature)
            expected = 200 if correct else 401
            results.append({"correctly_signed": correct, "status": status, "error": error,
                            "expected": expected, "passed": status == expected})
        passed = all(r["passed"] for r in results)
        app.webhook_status = "OK" if passed else "PENDING"
        outcome = {"client_id": client_id, "passed": passed, "webhook_status": app.webhook_status,
                   "results": results, "at": self.clock.now().isoformat()}
        with self._lock:
            self._itr.append(outcome)
        return outcome

    # ------------------------------------------------------------------ log and thread

    def log(self) -> dict[str, Any]:
        with self._lock:
            return {"deliveries": [d.to_json() for d in self._log],
                    "attempts": list(self._attempts),
                    "intent_to_receive": list(self._itr),
                    "buffered": {c: len(q.buffer) for c, q in self._queues.items() if q.buffer}}

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="xero-webhooks", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.deliver()
            except Exception:  # keep the sender alive; the log shows the failure
                logger.exception("webhook delivery pass failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
