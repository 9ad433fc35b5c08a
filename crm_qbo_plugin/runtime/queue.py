"""The rq queue. Jobs use the JSON serializer and carry ids only — never tokens, objects or
personal data — so nothing sensitive rests in Redis and any worker version can read any job."""

from __future__ import annotations

import redis
from rq import Queue
from rq.serializers import JSONSerializer

JobQueue = Queue

QUEUE_NAME = "crm-qbo"
PROCESS_OUTBOX = "crm_qbo_plugin.jobs.tasks.process_outbox"


def make_queue(connection: redis.Redis, name: str = QUEUE_NAME) -> Queue:
    return Queue(name, connection=connection, serializer=JSONSerializer)


def enqueue_outbox(queue: Queue, outbox_id: int) -> None:
    queue.enqueue(PROCESS_OUTBOX, outbox_id, job_timeout=300, result_ttl=60, failure_ttl=86400)
