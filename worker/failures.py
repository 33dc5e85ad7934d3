"""Which job failures are permanent: those fail at once, without retries.

A retry helps when the database or the network is away.  It cannot help a
row that PostgreSQL refuses (a CHECK, a value it cannot read) or a payload
this worker cannot read: retried, such a job would wait out all its
back-offs (about 30 minutes) before reaching the failed registry anyway."""

import psycopg2

from submission import PayloadError

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
