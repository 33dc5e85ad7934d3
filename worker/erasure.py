"""Erasure, all of it: the jobs that erase one answer (the receipt's button,
the auditor's `python -m worker.erase`) and every answer older than the
retention time (worker/retention.py's schedule), in both of their halves.

- PostgreSQL: erase_submissions() (db/schema.sql) leaves a tombstone and
  deletes the row, ordered against any store of the same id, so a store
  delivered later stores nothing.
- Redis: the store job's hash holds the answers, and RQ would keep it in the
  queue, the scheduled registry (a retry), the failed registry (30 days) or
  as a finished job (JOB_RESULT_TTL).  It is deleted after the tombstone's
  COMMIT, and once more JOB_TIMEOUT + SECOND_PASS_MARGIN_S later (the
  worker's maintenance runs these second passes): RQ's
  scheduler moves a due retry to the queue by reading it and then saving it
  whole (no WATCH), so a retry deleted in between comes back, and a store
  running during the first pass is still there.  An erase by request also
  leaves a mark (submission.erased_key) for as long as a form token of that
  id can be valid, so the web refuses the id at once (submission/cap.py).

A database outage never loses an erase: failures.erase_until_done keeps a
failing erase job retrying at the last back-off, however long it lasts.
"""

import logging
import time
import uuid

import psycopg2
import redis
from rq import get_current_job
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

import submission as payload

from . import db, deliveries, metrics
from .db import execute
from .config import Config

log = logging.getLogger(__name__)

ERASE = "SELECT erase_submissions(%(ids)s::uuid[])"
# One answer, with the table its store job names if that is still queued.
ERASE_ONE = "SELECT erase_submissions(ARRAY[%(id)s]::uuid[], %(table)s)"
# The survey's table and the time of an erase, for its webhooks.
TOMBSTONE = "SELECT survey_table, erased_at FROM erasures WHERE submission_id = %s"
# Oldest first, a bounded number at a time: one short transaction each, well
# inside WORKER_DB_TIMEOUT, and a bounded number of locks held at once.
# Every survey's table (db/schema.sql).
EXPIRED = "SELECT expired_submissions(%(days)s, %(limit)s)"
EXPIRED_BATCH = 500

# After JOB_TIMEOUT a store that was running has ended or been abandoned
# (and RQ's maintenance, every WORKER_MAINTENANCE_INTERVAL, has failed it);
# this much later the second pass looks again.
SECOND_PASS_MARGIN_S = 60
# The erased mark outlives every form token (CSRF_TIME_LIMIT) by this much.
ERASED_MARK_MARGIN_S = 3600


# Erased ids whose store job is looked for again, scored by when: the
# worker's maintenance (worker/survey_worker.py) runs the passes that are due.
SECOND_PASS_KEY = "survey:erasure:second-pass"
SECOND_PASS_BATCH = 100


def erase_submission(submission_id, connection=None):
    """Erase one submission, leaving its tombstone, then its store job from
    Redis (`connection`, by default the running job's); idempotent, so a
    re-run (a retry, a worker killed mid-erase) changes nothing more."""
    submission_id = str(uuid.UUID(submission_id))
    job = get_current_job()
    connection = connection or job.connection
    config = Config.from_env()
    deleted = execute(ERASE_ONE, {"id": submission_id, "table": _queued_table(connection, submission_id)})[0][0]
    # After the tombstone's COMMIT: from then on no delivery of the store can
    # store, so whatever is left of its job in Redis is only a copy to delete.
    connection.set(payload.erased_key(submission_id), 1, ex=config.form_token_ttl + ERASED_MARK_MARGIN_S)
    forgotten = forget_store_job(connection, submission_id)
    _schedule_second_pass(connection, submission_id, config.job_timeout)
    _tell_webhooks(connection, submission_id)
    metrics.JOBS.labels(outcome="erase").inc()
    metrics.ERASED.labels(reason="request").inc(deleted)
    log.info("submission %s erased%s%s", submission_id, "" if deleted else " (no stored row)",
             ", its store job deleted from Redis" if forgotten else "", extra={"submission_id": submission_id})
    return {"erased": bool(deleted)}


def _tell_webhooks(connection, submission_id):
    """No answer.stored delivery left waiting; the erase's own answer.erased
    enqueued (its job id is fixed, so a re-run of the erase enqueues it once)."""
    [(table, erased_at)] = execute(TOMBSTONE, (submission_id,))
    if table is None:
        return  # never stored, and no store was waiting: no webhook heard of it
    deliveries.forget_stored(connection, table, submission_id)
    deliveries.enqueue(connection, table, deliveries.ERASED, [submission_id], erased_at=erased_at.isoformat())


def _queued_table(connection, submission_id):
    """The survey table the submission's store job names, while Redis holds it."""
    try:
        store = Job.fetch(submission_id, connection=connection, serializer=JSONSerializer)
        return payload.parse(store.kwargs["submission"])["table"]
    except (NoSuchJobError, KeyError, payload.PayloadError, ValueError, TypeError):
        return None  # no job (stored, expired, or never queued): the row, if any, tells
    except redis.RedisError:
        # Redis away: the tombstone is written all the same (Redis's half then
        # fails, and the erase is run again); the re-run names the table.
        return None


def _schedule_second_pass(connection, submission_id, job_timeout, now=None):
    due = (time.time() if now is None else now) + job_timeout + SECOND_PASS_MARGIN_S
    connection.zadd(SECOND_PASS_KEY, {submission_id: due})


def run_second_passes(connection, now=None):
    """The second passes that are due, a batch at a time: delete what came
    back of each store job since its erase; one a worker is running still is
    looked at again later.  Several workers may run this at once: ZREM
    hands each id to one of them.  Returns how many store jobs it deleted."""
    now = time.time() if now is None else now
    job_timeout = Config.from_env().job_timeout
    forgotten = 0
    for member in connection.zrangebyscore(SECOND_PASS_KEY, 0, now, start=0, num=SECOND_PASS_BATCH):
        if not connection.zrem(SECOND_PASS_KEY, member):
            continue  # another worker's
        submission_id = member.decode()
        if forget_store_job(connection, submission_id):
            forgotten += 1
            log.warning("submission %s: its store job came back after the erase; deleted again", submission_id,
                        extra={"submission_id": submission_id})
        elif _status(connection, submission_id) == JobStatus.STARTED:
            _schedule_second_pass(connection, submission_id, job_timeout, now)
    return forgotten


def _status(connection, job_id):
    status = connection.hget(Job.key_for(job_id), "status")
    return status and status.decode()


def erase_expired(days):
    """Erase, with tombstones, every answer stored more than `days` days ago,
    and what is left of their store jobs in Redis (with a JOB_RESULT_TTL of
    days, or a job that stored its row and then failed)."""
    total = 0
    connection = get_current_job().connection
    while True:
        ids = execute(EXPIRED, {"days": days, "limit": EXPIRED_BATCH})[0][0]
        if not ids:
            break
        try:
            total += execute(ERASE, {"ids": ids})[0][0]
        except psycopg2.errors.DeadlockDetected:
            # With a batch store holding some of the same buckets (db/schema.sql): again.
            log.info("retention: deadlocked with a store; trying that batch again")
            continue
        forget_store_jobs(connection, ids)
    metrics.JOBS.labels(outcome="erase").inc()
    metrics.ERASED.labels(reason="retention").inc(total)
    log.info("retention: %d answers stored more than %d days ago erased", total, days)
    return {"erased": total}


def forget_store_job(connection, submission_id):
    """Delete the submission's store job (its job id is the submission id)
    from Redis, with its queue entry, registries and results, unless a worker
    is running it; return whether it was deleted.

    A running store is left alone (the second pass comes back for it):
    deleting its hash under the worker would not stop it, and it stores
    nothing, since the tombstone is committed before this is called.  So is
    a store a worker has just taken off the queue and not yet marked started
    (RQ's own dequeue does not look again); the batch worker re-reads each
    status as it starts them and skips a deleted one."""
    key = Job.key_for(submission_id)
    with connection.pipeline() as pipe:
        while True:
            try:
                # A worker starting it now changes its hash: the delete is not sent, and we look again.
                pipe.watch(key)
                status = pipe.hget(key, "status")
                if status is None or status.decode() == JobStatus.STARTED:
                    return False
                job = Job.fetch(submission_id, connection=connection, serializer=JSONSerializer)
                pipe.multi()
                job.delete(pipeline=pipe, remove_from_queue=True)
                pipe.execute()
                return True
            except redis.WatchError:
                continue
            except NoSuchJobError:
                return False


def forget_store_jobs(connection, submission_ids):
    """forget_store_job for many; return how many were deleted.  Most have
    no job left (a finished one expires after JOB_RESULT_TTL): one round
    trip finds those that do."""
    with connection.pipeline(transaction=False) as pipe:
        for submission_id in submission_ids:
            pipe.exists(Job.key_for(submission_id))
        present = pipe.execute()
    return sum(forget_store_job(connection, sid) for sid, there in zip(submission_ids, present) if there)


def erase_now(submission_ids, config, connection):
    """The auditor's command: erase each now, in this process; yields (id, erased)."""
    db.configure(config.database_url, config.db_timeout)
    deliveries.configure(config.surveys())  # the webhooks each erase tells
    try:
        for sid in submission_ids:
            yield sid, erase_submission(str(sid), connection)["erased"]
    finally:
        db.discard()
