"""Which job failures are permanent: those fail at once, without retries.

A retry helps when the database or the network is away.  It cannot help a
row that PostgreSQL refuses (a CHECK, a value it cannot read) or a payload
this worker cannot read: retried, such a job would wait out all its
back-offs (about 30 minutes) before reaching the failed registry anyway."""

import psycopg2

from submission import ERASE_JOB, PayloadError

from .db import SERVER_AWAY

# An erase job queued by an earlier release has the older name.
ERASE_JOBS = (ERASE_JOB, "worker.jobs.erase_submission")

# IntegrityError covers CheckViolation and NotNullViolation; DataError covers
# values too long or unreadable (a malformed uuid or timestamp).
PERMANENT = (PayloadError, psycopg2.DataError, psycopg2.IntegrityError)


def fail_fast(job, exc_type, exc_value, traceback):
    """An RQ exception handler, run before RQ chooses between a retry and the
    failed registry (Worker.handle_exception, then handle_job_failure, which
    retries only while job.retries_left > 0): a permanent error spends the
    job's remaining retries, so RQ fails it now, with its reason."""
    if exc_type is not None and issubclass(exc_type, PERMANENT):
        job.retries_left = 0
    return True  # let the next handler and RQ's default handling go on


def erase_until_done(job, exc_type, exc_value, traceback):
    """An RQ exception handler: an erase that fails because the database is
    away (db.SERVER_AWAY) is never given up (RQ would park it in the failed registry after
    its last retry, and the answer would stay).  It keeps its place and
    retries at its last, longest back-off, for as long as the outage lasts.
    RQ takes the interval from how many retries are left (the last with one
    left), so one is left each time."""
    if (exc_type is not None and issubclass(exc_type, SERVER_AWAY) and job.func_name in ERASE_JOBS
            and job.retry_intervals and (job.retries_left or 0) < 1):
        job.retries_left = 1
    return True
