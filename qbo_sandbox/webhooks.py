"""Outbound QBO webhooks: aggregation, signing, in-order delivery and Intuit's retry schedule.

Every successful write on the REST side calls :meth:`WebhookDispatcher.record_change`. Changes
are queued per app (only apps connected to the realm through OAuth, with a webhook URL, and only
for changes after they connected), grouped over an aggregation interval, and POSTed with an
``intuit-signature`` header. A delivery that is not answered with HTTP 200 within 3 s is retried
on Intuit's schedule and holds every later delivery for that app behind it (Intuit's in-order
queue since Dec 2024). All timing reads the sandbox clock, so ``clock.advance`` drives retries.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import logging
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
from flask import Blueprint, Response, request

from qbo_sandbox.clock import Clock
from qbo_sandbox.oauth import Connection, OAuthServer

# Intuit: retry at 10 s, 20 s, 30 s, 5 min, 20 min, 2 h, 4 h, 6 h, then every 6 h.
RETRY_SCHEDULE_SECONDS: tuple[int, ...] = (10, 20, 30, 300, 1200, 7200, 14400, 21600)
RETRY_FOREVER_SECONDS = 21600
DELIVERY_TIMEOUT_SECONDS = 3.0
DEFAULT_AGGREGATION_SECONDS = 1.0
OPERATIONS = ("Create", "Update", "Delete", "Merge", "Void", "Emailed")
CLOUDEVENT_VERBS = {
    "Create": "created",
    "Update": "updated",
    "Delete": "deleted",
    "Merge": "merged",
    "Void": "voided",
    "Emailed": "emailed",
}
LOG_LIMIT = 2000

logger = logging.getLogger(__name__)


def sign(body: bytes, verifier_token: str) -> str:
    """The ``intuit-signature`` header value: base64(HMAC-SHA256(verifier token, raw body))."""
    digest = hmac.new(verifier_token.encode("utf-8"), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def verify(body: bytes, signature: str, verifier_token: str) -> bool:
    """Constant-time check of an ``intuit-signature`` header against the raw body."""
    return hmac.compare_digest(sign(body, verifier_token), signature.strip())


def retry_delay(failed_attempts: int) -> int:
    """Seconds to wait after the ``failed_attempts``-th consecutive failure (1-based)."""
    if failed_attempts <= len(RETRY_SCHEDULE_SECONDS):
        return RETRY_SCHEDULE_SECONDS[failed_attempts - 1]
    return RETRY_FOREVER_SECONDS


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _iso_ms(moment: datetime) -> str:
    """``2025-09-08T20:52:31.657Z``: the current legacy ``lastUpdated`` style."""
    return _utc(moment).strftime("%Y-%m-%dT%H:%M:%S.") + f"{_utc(moment).microsecond // 1000:03d}Z"


@dataclass
class Change:
    """One entity change as recorded by the REST side."""

    realm_id: str
    entity: str
    entity_id: str
    operation: str
    last_updated: datetime
    data: dict[str, Any] | None
    recorded_at: datetime


@dataclass
class Delivery:
    """One POST body for one app; its bytes are fixed so every retry is signed identically."""

    delivery_id: int
    client_id: str
    url: str
    webhook_format: str
    body: bytes
    signature: str
    change_count: int
    realms: list[str]
    created_at: datetime
    next_attempt_at: datetime
    attempts: int = 0
    status: str = "pending"  # pending | retrying | delivered
    delivered_at: datetime | None = None
    last_error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "delivery_id": self.delivery_id,
            "client_id": self.client_id,
            "url": self.url,
            "format": self.webhook_format,
            "realms": self.realms,
            "changes": self.change_count,
            "status": self.status,
            "attempts": self.attempts,
            "created_at": self.created_at.isoformat(),
            "next_attempt_at": None
            if self.status == "delivered"
            else self.next_attempt_at.isoformat(),
            "delivered_at": self.delivered_at.isoformat() if self.delivered_at else None,
            "last_error": self.last_error,
            "signature": self.signature,
            "body": self.body.decode("utf-8"),
        }


@dataclass
class _AppQueue:
    """Per-app state: changes still aggregating, then deliveries strictly in order."""

    buffer: list[Change] = field(default_factory=list)
    deliveries: deque[Delivery] = field(default_factory=deque)


class WebhookDispatcher:
    """Collects entity changes and POSTs signed notifications to connected apps."""

    def __init__(
        self,
        clock: Clock,
        oauth: OAuthServer,
        *,
        aggregation_seconds: float = DEFAULT_AGGREGATION_SECONDS,
        timeout_seconds: float = DELIVERY_TIMEOUT_SECONDS,
        poll_seconds: float = 0.2,
    ) -> None:
        self.clock = clock
        self.oauth = oauth
        self.aggregation_seconds = aggregation_seconds
        self.timeout_seconds = timeout_seconds
        self.poll_seconds = poll_seconds
        self._lock = threading.RLock()  # guards state; never held during HTTP
        self._deliver_lock = threading.Lock()  # one delivery pass at a time keeps order
        self._queues: dict[str, _AppQueue] = {}
        self._recent: deque[Delivery] = deque(maxlen=LOG_LIMIT)
        self._attempt_log: deque[dict[str, Any]] = deque(maxlen=LOG_LIMIT)
        self._ids = itertools.count(1)
        self._session = requests.Session()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.blueprint = self._make_blueprint()

    # ------------------------------------------------------------------ recording

    def record_change(
        self,
        realm_id: str,
        entity: str,
        entity_id: str,
        operation: str,
        last_updated: datetime,
        data: dict[str, Any] | None = None,
    ) -> None:
        """Queue a change for every app connected to the realm (after it connected)."""
        if operation not in OPERATIONS:
            raise ValueError(f"unknown webhook operation {operation!r}")
        now = self.clock.now()
        change = Change(
            str(realm_id), entity, str(entity_id), operation, _utc(last_updated), data, now
        )
        connections = self.oauth.apps_for_realm(str(realm_id))
        with self._lock:
            for conn in connections:
                if not conn.webhook_url or change.last_updated < conn.connected_at:
                    continue
                self._queues.setdefault(conn.client_id, _AppQueue()).buffer.append(change)

    # ------------------------------------------------------------------ payloads

    @staticmethod
    def legacy_bodies(changes: list[Change]) -> list[tuple[str, bytes]]:
        """One body per realm: Intuit's legacy format carries one eventNotification per realm."""
        by_realm: dict[str, list[dict[str, Any]]] = {}
        for change in changes:
            entity: dict[str, Any] = {
                "name": change.entity,
                "id": change.entity_id,
                "operation": change.operation,
                "lastUpdated": _iso_ms(change.last_updated),
            }
            if change.operation == "Merge" and change.data and "deletedid" in change.data:
                entity["deletedId"] = str(change.data["deletedid"])
            by_realm.setdefault(change.realm_id, []).append(entity)
        return [
            (
                realm,
                json.dumps(
                    {
                        "eventNotifications": [
                            {"realmId": realm, "dataChangeEvent": {"entities": entities}}
                        ]
                    },
                    separators=(",", ":"),
                ).encode("utf-8"),
            )
            for realm, entities in by_realm.items()
        ]

    @staticmethod
    def cloudevents_body(changes: list[Change], client_id: str) -> bytes:
        """A JSON array of CloudEvents 1.0 (one per change; may mix realms)."""
        source = "intuit." + base64.b64encode(
            hashlib.sha256(f"qbo-sandbox:{client_id}".encode()).digest()
        ).decode("ascii")
        events = []
        for change in changes:
            events.append(
                {
                    "specversion": "1.0",
                    "id": f"{uuid.uuid4()}-{change.entity}-{change.entity_id}",
                    "source": source,
                    "type": f"qbo.{change.entity.lower()}.{CLOUDEVENT_VERBS[change.operation]}.v1",
                    "datacontenttype": "application/json",
                    "time": _iso_ms(change.last_updated),
                    "intuitentityid": change.entity_id,
                    "intuitaccountid": change.realm_id,
                    "data": dict(change.data or {}),
                }
            )
        return json.dumps(events, separators=(",", ":")).encode("utf-8")

    def _package(self, client_id: str, queue: _AppQueue, now: datetime, *, all_: bool) -> None:
        """Turn aggregated changes into deliveries (caller holds the lock)."""
        if not queue.buffer:
            return
        oldest = queue.buffer[0].recorded_at
        if not all_ and (now - oldest).total_seconds() < self.aggregation_seconds:
            return
        app = self.oauth.get_app(client_id)
        changes, queue.buffer = queue.buffer, []
        if app is None or not app.webhook_url:
            return  # the app was removed or lost its webhook URL while changes aggregated
        if app.webhook_format == "cloudevents":
            bodies = [
                (sorted({c.realm_id for c in changes}), self.cloudevents_body(changes, client_id))
            ]
        else:
            bodies = [([realm], body) for realm, body in self.legacy_bodies(changes)]
        for realms, body in bodies:
            delivery = Delivery(
                delivery_id=next(self._ids),
                client_id=client_id,
                url=app.webhook_url,
                webhook_format=app.webhook_format,
                body=body,
                signature=sign(body, app.verifier_token),
                change_count=sum(1 for c in changes if c.realm_id in realms),
                realms=realms,
                created_at=now,
                next_attempt_at=now,
            )
            queue.deliveries.append(delivery)
            self._recent.append(delivery)

    # ------------------------------------------------------------------ delivery

    def deliver(self, force: bool = False) -> dict[str, Any]:
        """Send everything pending now (aggregation ignored) plus due retries; with ``force``,
        retries not yet due too. Returns ``{"delivered", "failed", "pending"}``."""
        return self._run(package_all=True, force=force)

    def _run(self, *, package_all: bool, force: bool) -> dict[str, Any]:
        delivered = failed = 0
        with self._deliver_lock:
            with self._lock:
                now = self.clock.now()
                for client_id, queue in self._queues.items():
                    self._package(client_id, queue, now, all_=package_all)
                client_ids = list(self._queues)
            for client_id in client_ids:
                while True:
                    with self._lock:
                        app_queue = self._queues.get(client_id)
                        if app_queue is None or not app_queue.deliveries:
                            break
                        head = app_queue.deliveries[0]
                        if not force and head.next_attempt_at > self.clock.now():
                            break  # not due; everything after it waits too
                    ok = self._attempt(head)
                    with self._lock:
                        if ok:
                            delivered += 1
                            if app_queue.deliveries and app_queue.deliveries[0] is head:
                                app_queue.deliveries.popleft()
                        else:
                            failed += 1
                    if not ok:
                        break
        return {"delivered": delivered, "failed": failed, "pending": self.pending_count()}

    def _attempt(self, delivery: Delivery) -> bool:
        """One POST; only HTTP 200 within the timeout counts as acknowledged."""
        started = self.clock.now()
        t0 = time.monotonic()
        status_code: int | None = None
        error: str | None = None
        try:
            response = self._session.post(
                delivery.url,
                data=delivery.body,
                headers={
                    "Content-Type": "application/json",
                    "intuit-signature": delivery.signature,
                    "User-Agent": "qbo-sandbox-webhooks/1.0",
                },
                timeout=self.timeout_seconds,
                allow_redirects=False,
            )
            status_code = response.status_code
            response.close()
            if status_code != 200:
                error = f"HTTP {status_code}"
        except requests.Timeout:
            error = f"timeout after {self.timeout_seconds:g} s"
        except requests.RequestException as exc:
            error = f"connection error: {type(exc).__name__}"
        elapsed_ms = round((time.monotonic() - t0) * 1000, 1)
        ok = error is None
        with self._lock:
            delivery.attempts += 1
            finished = self.clock.now()
            if ok:
                delivery.status = "delivered"
                delivery.delivered_at = finished
                delivery.last_error = None
            else:
                delivery.status = "retrying"
                delivery.last_error = error
                delivery.next_attempt_at = finished + timedelta(
                    seconds=retry_delay(delivery.attempts)
                )
            self._attempt_log.append(
                {
                    "delivery_id": delivery.delivery_id,
                    "client_id": delivery.client_id,
                    "url": delivery.url,
                    "attempt": delivery.attempts,
                    "attempted_at": started.isoformat(),
                    "status_code": status_code,
                    "ok": ok,
                    "error": error,
                    "elapsed_ms": elapsed_ms,
                    "next_attempt_at": None if ok else delivery.next_attempt_at.isoformat(),
                }
            )
        return ok

    def pending_count(self) -> int:
        """Deliveries not yet acknowledged plus changes still aggregating (as future deliveries)."""
        with self._lock:
            return sum(len(q.deliveries) + (1 if q.buffer else 0) for q in self._queues.values())

    def log(self) -> dict[str, Any]:
        """The delivery log: recent deliveries (sent or queued), every attempt, pending count."""
        with self._lock:
            queued = [d for q in self._queues.values() for d in q.deliveries]
            seen = {d.delivery_id for d in self._recent}
            deliveries = list(self._recent) + [d for d in queued if d.delivery_id not in seen]
            deliveries.sort(key=lambda d: d.delivery_id)
            return {
                "pending": self.pending_count(),
                "aggregating_changes": sum(len(q.buffer) for q in self._queues.values()),
                "deliveries": [d.to_json() for d in deliveries],
                "attempts": list(self._attempt_log),
            }

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Deliver in the background: after the aggregation interval, and retries when due."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="qbo-webhooks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout_seconds + 2)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self._run(package_all=False, force=False)
            except Exception:  # a bad tick must not kill the dispatcher thread
                logger.exception("webhook delivery pass failed")

    def reset(self) -> None:
        """Drop queued changes, deliveries and the log (the background thread keeps running)."""
        with self._deliver_lock, self._lock:
            self._queues.clear()
            self._recent.clear()
            self._attempt_log.clear()

    # ------------------------------------------------------------------ HTTP

    def _make_blueprint(self) -> Blueprint:
        bp = Blueprint("qbo_webhooks", __name__)

        @bp.post("/_sandbox/webhooks/deliver")
        def deliver_now() -> Response:
            payload = request.get_json(silent=True)
            force = bool(payload.get("force")) if isinstance(payload, dict) else False
            return Response(json.dumps(self.deliver(force=force)), mimetype="application/json")

        @bp.get("/_sandbox/webhooks")
        def delivery_log() -> Response:
            return Response(json.dumps(self.log()), mimetype="application/json")

        return bp


__all__ = [
    "Connection",
    "RETRY_SCHEDULE_SECONDS",
    "WebhookDispatcher",
    "retry_delay",
    "sign",
    "verify",
]
