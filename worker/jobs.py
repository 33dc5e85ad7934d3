"""The one job: write one submission as one row."""

import logging

import psycopg2

from . import db, metrics

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


def store_submission(submission):
    """Store one submission; return whether this call inserted the row."""
    conn = db.connection()
    try:
        with conn, conn.cursor() as cur:
            cur.execute(INSERT_SUBMISSION, submission)
            row = cur.fetchone()  # None when the row was already there
    except (psycopg2.OperationalError, psycopg2.InterfaceError):
        # The server went away: drop the connection so the retry reconnects.
        db.discard()
        raise
    inserted = row is not None
    metrics.JOBS.labels(outcome="stored" if inserted else "already_stored").inc()
    if inserted:
        # From the row itself, as the auditor's `stored_at - submitted_at` sees it.
        metrics.SUBMITTED_TO_STORED.observe(max(float(row[0]), 0.0))
    log.info("submission %s %s", submission["id"], "stored" if inserted else "already stored",
             extra={"submission_id": submission["id"]})
    return {"inserted": inserted}
