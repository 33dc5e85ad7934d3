"""The store jobs: write one submission as one row, and the batched form of
it (store_submissions) that worker/batch_worker.py runs for many jobs at
once.  The erase jobs are worker/erasure.py's."""

import json
import logging
import uuid

import redis
from psycopg2 import sql
from rq import get_current_job

import submission as payload
from submission import cap
from submission.cap import Cap

from . import deliveries, metrics, notify
# Jobs queued by an earlier release name the erase jobs here.
from .erasure import erase_expired, erase_submission  # noqa: F401
from .db import execute, execute_all

log = logging.getLogger(__name__)

# ON CONFLICT makes the job idempotent: RQ delivers at least once (a retry, or a
# job re-run after its worker died between COMMIT and marking it finished), and
# the submission id as primary key turns every extra delivery into a no-op.
# One statement per survey's table for any number of submissions: the rows
# arrive as one JSON array, typed by the table's own row type, so a column of
# any question type takes its answers as they are.  RETURNING names the rows
# this statement inserted; the others were there.
INSERT = """
    INSERT INTO answers.{table} ({columns})
    SELECT {columns} FROM jsonb_populate_recordset(NULL::answers.{table}, %s::jsonb)
    ON CONFLICT (submission_id) DO NOTHING
    RETURNING submission_id::text, extract(epoch FROM stored_at - submitted_at)
"""
ROW_COLUMNS = ("submission_id", "submitted_at", "survey_version")

# Neither insert checks for a tombstone: the table's trigger does, under a
# lock that orders it against an erase (db/schema.sql), so an erased id is
# skipped like a stored one and its job reports "not inserted".


def store_submission(submission):
    """Store one submission; return whether this call inserted the row."""
    submission = payload.parse(submission)
    # No row when it was already there.
    rows = dict(execute_all(inserts([submission])))
    job = get_current_job()
    if job is not None:  # called as a job: its queue's count, and its webhooks
        _settle(Cap(job.connection, job.origin, submission["table"]), [submission["id"]])
        _deliver(job.connection, submission["table"], [submission["id"]])
    return _stored(submission, rows.get(str(uuid.UUID(submission["id"]))))


def store_submissions(submissions, cap_count):
    """Store submissions in one transaction, then settle each in its
    survey's count (`cap_count`'s queue, submission/cap.py); return each
    one's job result."""
    submissions = [payload.parse(s) for s in submissions]
    rows = dict(execute_all(inserts(submissions)))
    by_table = {}
    for s in submissions:
        by_table.setdefault(s["table"], []).append(s["id"])
    for table, ids in by_table.items():
        _settle(cap_count.of(table), ids)
        _deliver(cap_count.redis, table, ids)
    return [_stored(s, rows.get(str(uuid.UUID(s["id"])))) for s in submissions]


def inserts(submissions):
    """(statement, params) storing parsed `submissions`: one per survey's table."""
    by_table = {}
    for s in submissions:
        by_table.setdefault(s["table"], []).append(
            {**s["answers"], "submission_id": s["id"], "submitted_at": s["submitted_at"],
             "survey_version": s["survey_version"] or None})
    statements = []
    for table, records in by_table.items():
        # Every question any of them answered; a question none did stays NULL.
        answered = sorted({key for record in records for key in record} - set(ROW_COLUMNS))
        columns = sql.SQL(", ").join(map(sql.Identifier, [*ROW_COLUMNS, *answered]))
        statements.append((sql.SQL(INSERT).format(table=sql.Identifier(table), columns=columns),
                           (json.dumps(records),)))
    return statements


def held_by_database(ids, table=cap.LEGACY_TABLE):
    """Which of `ids` PostgreSQL holds, as rows of `table` or tombstones: Cap.reconcile's question."""
    return execute(cap.held_query(table), (list(ids),))[0][0]


def _settle(cap_count, ids):
    """After the commit: every one of `ids` is in PostgreSQL now (a row, or a
    tombstone the trigger kept it out for)."""
    try:
        cap_count.settle(ids)
    except redis.RedisError as exc:
        # Stored all the same; the worker's maintenance settles them later (Cap.reconcile).
        log.warning("stored %d submissions but could not settle the cap's count: %s", len(ids), exc)


def _deliver(connection, table, ids):
    """The webhooks' deliveries and the owner's email, after the commit and
    before RQ marks the jobs finished: a worker killed in between runs them
    again, and this again (worker/deliveries.py).  For every id, not only
    those inserted now: a re-run finds its rows stored."""
    deliveries.enqueue(connection, table, deliveries.STORED, ids)
    notify.enqueue(connection, table, ids)


def _stored(submission, delay):
    """Count and log one submission; delay is stored_at - submitted_at if this call inserted it."""
    inserted = delay is not None
    metrics.JOBS.labels(outcome="stored" if inserted else "already_stored").inc()
    if inserted:
        metrics.STORED.labels(survey=submission["survey"]).inc()
        # From the row itself, as the auditor's `stored_at - submitted_at` sees it.
        metrics.SUBMITTED_TO_STORED.observe(max(float(delay), 0.0))
    log.info("submission %s %s", submission["id"], "stored" if inserted else "already stored",
             extra={"submission_id": submission["id"]})
    return {"inserted": inserted}
