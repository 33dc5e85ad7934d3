"""The one job: write one submission as one row."""

import logging

import psycopg2

from . import db

log = logging.getLogger(__name__)

# ON CONFLICT makes the job idempotent: RQ delivers at least once (a retry, or a
# job re-run after its worker died between COMMIT and marking it finished), and
# the submission id as primary key turns every extra delivery into a no-op.
INSERT_SUBMISSION = """
    INSERT INTO cats (submission_id, name, coat, donut, submitted_at)
    VALUES (%(id)s, %(name)s, %(coat)s, %(donut)s, %(submitted_at)s)
    ON CONFLICT (submission_id) DO NOTHING
"""


def store_submission(submission):
    """Store one submission; return whether this call inserted the row."""
    conn = db.connection()
    try:
        with conn, conn.cursor() as cur:
            cur.execute(INSERT_SUBMISSION, submission)
            inserted = cur.rowcount == 1
    except (psycopg2.OperationalError, psycopg2.InterfaceError):
        # The server went away: drop the connection so the retry reconnects.
        db.discard()
        raise
    log.info("submission %s %s", submission["id"], "stored" if inserted else "already stored")
    return {"inserted": inserted}
