"""The store jobs: write one submission as one row, and the batched form of
it (store_submissions) that worker/batch_worker.py runs for many jobs at
once.  The erase jobs are worker/erasure.py's."""

import logging
import uuid

import redis
from rq import get_current_job

import submission as payload
from submission import cap
from submission.cap import Cap

from . import metrics
# Jobs queued by an earlier release name the erase jobs here.
from .erasure import erase_expired, erase_submission  # noqa: F401
from .db import execute

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


def store_submission(submission):
    """Store one submission; return whether this call inserted the row."""
    submission = payload.parse(submission)
    # No row when it was already there.
    rows = execute(INSERT_SUBMISSION, submission)
    job = get_current_job()
    if job is not None:  # called as a job: its queue's count
        _settle(Cap(job.connection, job.origin), [submission["id"]])
    return _stored(submission, rows[0][0] if rows else None)


def store_submissions(submissions, cap_count):
    """Store parsed submissions in one transaction, then settle them in
    `cap_count` (submission/cap.py); return each one's job result."""
    rows = execute(INSERT_SUBMISSIONS, {name: [s[name] for s in submissions] for name in payload.FIELDS})
    _settle(cap_count, [s["id"] for s in submissions])
    rows = dict(rows)
    return [_stored(s, rows.get(str(uuid.UUID(s["id"])))) for s in submissions]


def held_by_database(ids):
    """Which of `ids` PostgreSQL holds, as rows or tombstones: Cap.reconcile's question."""
    return execute(cap.HELD, (list(ids),))[0][0]


def _settle(cap_count, ids):
    """After the commit: every one of `ids` is in PostgreSQL now (a row, or a
    tombstone the trigger kept it out for)."""
    try:
        cap_count.settle(ids)
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
