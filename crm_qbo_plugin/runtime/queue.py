"""The rq queue. Jobs use the JSON serializer and carry ids only — never tokens, objects or
personal data — so nothing sensitive rests in Redis and any worker version can read any job."""

from __future__ import annotations

from collections.abc import Sequence

import redis
from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer

JobQueue = Queue

QUEUE_NAME = "crm-qbo"
PROCESS_OUTBOX = "crm_qbo_plugin.jobs.tasks.process_outbox"


def make_queue(connection: redis.Redis, name: str = QUEUE_NAME) -> Queue:
    return Queue(name, connection=connection, serializer=JSONSerializer)


def outbox_job_id(outbox_id: int) -> str:
    return f"crm-qbo-outbox-{outbox_id}"


def enqueue_outbox(queue: Queue, outbox_id: int) -> bool:
    """Queue the row's job unless it waits in the queue already; returns whether it queued one.

    Each row has one job id, so the sweeper can tell a job still waiting behind a backlog (longer
    than its enqueue lease) from a lost one: queuing another for every lease that runs out piles
    up jobs faster than the backlog drains. LPOS scans the queue's list in Redis, microseconds for
    thousands of entries. A job running right now is not in the list: a row whose lease ran out
    while its job runs gets a second one, which finds the row claimed and ends at once."""
    job_id = outbox_job_id(outbox_id)
    if queue.connection.lpos(queue.key, job_id) is not None:
        return False
    # result_ttl=0: the row in the database is the outcome; nobody reads the job's return value.
    queue.enqueue(PROCESS_OUTBOX, outbox_id, job_id=job_id, job_timeout=300, result_ttl=0, failure_ttl=86400)
    return True


def cancel_outbox(queue: Queue, outbox_ids: Sequence[int]) -> None:
    """Take the jobs of rows another job settled (a batch's members) out of the queue, in one round
    trip: a job that would only find its row done still costs a worker ~1.7 ms of rq bookkeeping.
    A job already taken by a worker is not in the list and simply finds its row done."""
    if not outbox_ids:
        return
    job_ids = [outbox_job_id(outbox_id) for outbox_id in outbox_ids]
    queue.connection.register_script(_CANCEL)(keys=[queue.key, *(Job.key_for(j) for j in job_ids)], args=job_ids)


_CANCEL = """
for i, job_id in ipairs(ARGV) do
  redis.call('LREM', KEYS[1], 0, job_id)
  redis.call('DEL', KEYS[i + 1])
end
return 0
"""
