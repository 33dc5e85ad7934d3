"""The jobs: write one submission as one row, and the batched form of it
(store_submissions) that worker/batch_worker.py runs for many jobs at once;
erase one (erase_submission), and erase every answer older than the
retention time (erase_expired)."""

import logging
import time
import uuid

import psycopg2
import redis
from rq import get_current_job

import submission as payload
from submission import cap
from submission.cap import Cap

from . import db, metrics
from .forget import forget_store_job, forget_store_jobs

log = logging.getLogger(__name__)

# ON CONFLICT makes the job idempotent: RQ delivers at least once (a retry, or a
# job re-run after its worker died between COMMIT and marking it finished), and
# the submission id as primary key turns every extra delivery into a no-op.
INSERT_SUBMISSION = """
    INSERT INTO cats (submission_id, name, coat, donut, submitted_at)
    VALUES (%(id)s, %(name)s, %(coat)s, %(donut)s, %(submitted_at)s)
    ON CONFLICT (submission_id) DO NOTHING
    RETURNING extract(epoch FROM stored_at - submitted_at)
"""

# The same insert for many submissions: one statement, one transaction, one
# COMMIT.  RETURNING names the rows this call inserted; the others were there.
INSERT_SUBMISSIONS = """
    INSERT INTO cats (submission_id, name, coat, donut, submitted_at)
    SELECT * FROM unnest(%(id)s::uuid[], %(name)s::text[], %(coat)s::text[], %(donut)s::text[],
                         %(submitted_at)s::timestamptz[])
    ON CONFLICT (submission_id) DO NOTHING
    RETURNING submission_id::text, extract(epoch FROM stored_at - submitted_at)
"""

# Neither insert checks for a tombstone: the table's trigger does, under a
# lock that orders it against an erase (db/schema.sql), so an erased id is
# skipped like a stored one and its job reports "not inserted".
ERASE = "SELECT erase_submissions(%(ids)s::uuid[])"
# Oldest first, a bounded number at a time: one short transaction each, well
# inside WORKER_DB_TIMEOUT, and a bounded number of locks held at once.
EXPIRED = """
    SELECT coalesce(array_agg(submission_id::text), '{}') FROM (
        SELECT submission_id FROM cats WHERE stored_at < now() - make_interval(days => %(days)s)
        ORDER BY stored_at LIMIT %(limit)s
    ) AS expired
"""
EXPIRED_BATCH = 500


# While PostgreSQL is down every job fails at once, and a worker would spin
# through the whole queue failing and rescheduling each one: measured, two
# workers burned a full core of a 2-core machine that way during a 10 s
# outage, taking it from the web that keeps accepting.  Pausing before the
# failure is reported keeps the worker near idle; the job still fails and
# retries with RQ's back-off, and every job behind it waits safely queued.
PAUSE_WHEN_DATABASE_DOWN_S = 1.0


def _execute(statement, params, then=None):
    """Every row `statement` returns, in one transaction; with `then`, a
    second statement's first row too, read in the same transaction."""
    try:
        conn = db.connection()
        with conn, conn.cursor() as cur:
            cur.execute(statement, params)
            rows = cur.fetchall()
            if then is None:
                return rows
            cur.execute(then)
            return rows, cur.fetchone()
    except (psycopg2.OperationalError, psycopg2.InterfaceError):
        # The server went away: drop the connection so the retry reconnects.
        db.discard()
        time.sleep(PAUSE_WHEN_DATABASE_DOWN_S)
        raise


def store_submission(submission):
    """Store one submission; return whether this call inserted the row."""
    submission = payload.parse(submission)
    # No row when it was already there.
    rows, (count,) = _execute(INSERT_SUBMISSION, submission, then=cap.RESPONSE_COUNT)
    job = get_current_job()
    if job is not None:  # called as a job: its queue's count
        _settle(Cap(job.connection, job.origin), count, [submission["id"]])
    return _stored(submission, rows[0][0] if rows else None)


def store_submissions(submissions, cap_count):
    """Store parsed submissions in one transaction, then settle them in
    `cap_count` (submission/cap.py); return each one's job result."""
    rows, (count,) = _execute(INSERT_SUBMISSIONS, {name: [s[name] for s in submissions] for name in payload.FIELDS},
                              then=cap.RESPONSE_COUNT)
    _settle(cap_count, count, [s["id"] for s in submissions])
    rows = dict(rows)
    return [_stored(s, rows.get(str(uuid.UUID(s["id"])))) for s in submissions]


def known_to_database(ids):
    """(answers PostgreSQL holds, which of `ids` it holds): Cap.reconcile's question."""
    count, known = _execute(cap.KNOWN, (list(ids),))[0]
    return count, known


def _settle(cap_count, count, ids):
    """After the commit: every one of `ids` is in PostgreSQL now (a row, or a
    tombstone the trigger kept it out for), and PostgreSQL holds `count`."""
    try:
        cap_count.settle(count, ids)
    except redis.RedisError as exc:
        # Stored all the same; the worker's maintenance settles them later (Cap.reconcile).
        log.warning("stored %d submissions but could not settle the cap's count: %s", len(ids), exc)


def _stored(submission, delay):
    """Count and log one submission; delay is stored_at - submitted_at if this call inserted it."""
    inserted = delay is not None
    metrics.JOBS.labels(outcome="stored" if inserted else "already_stored").inc()
    if inserted:
        # From the row itself, as the auditor's `stored_at - submitted_at` sees it.
        metrics.SUBMITTED_TO_STORED.observe(max(float(delay), 0.0))
    log.info("submission %s %s", submission["id"], "stored" if inserted else "already stored",
             extra={"submission_id": submission["id"]})
    return {"inserted": inserted}


def erase_submission(submission_id, connection=None):
    """Erase one submission, leaving its tombstone, then its store job from
    Redis (`connection`, by default the running job's); idempotent, so a
    re-run (a retry, a worker killed mid-erase) changes nothing more."""
    submission_id = str(uuid.UUID(submission_id))
    deleted = _execute(ERASE, {"ids": [submission_id]})[0][0]
    # After the tombstone's COMMIT: from then on no delivery of the store can
    # store, so whatever is left of its job in Redis is only a copy to delete.
    forgotten = forget_store_job(connection or get_current_job().connection, submission_id)
    metrics.JOBS.labels(outcome="erase").inc()
    metrics.ERASED.labels(reason="request").inc(deleted)
    log.info("submission %s erased%s%s", submission_id, "" if deleted else " (no stored row)",
             ", its store job deleted from Redis" if forgotten else "", extra={"submission_id": submission_id})
    return {"erased": bool(deleted)}


def erase_expired(days):
    """Erase, with tombstones, every answer stored more than `days` days ago,
    and what is left of their store jobs in Redis (with a JOB_RESULT_TTL of
    days, or a job that stored its row and then failed)."""
    total = 0
    connection = get_current_job().connection
    while True:
        ids = _execute(EXPIRED, {"days": days, "limit": EXPIRED_BATCH})[0][0]
        if not ids:
            break
        try:
            total += _execute(ERASE, {"ids": ids})[0][0]
        except psycopg2.errors.DeadlockDetected:
            # With a batch store holding some of the same buckets (db/schema.sql): again.
            log.info("retention: deadlocked with a store; trying that batch again")
            continue
        forget_store_jobs(connection, ids)
    metrics.JOBS.labels(outcome="erase").inc()
    metrics.ERASED.labels(reason="retention").inc(total)
    log.info("retention: %d answers stored more than %d days ago erased", total, days)
    return {"erased": total}
