"""The worker's PostgreSQL connection, opened once and reused across jobs.

A connection costs a few milliseconds to open and an insert well under one, so
opening one per job would cost more than the job itself.  That is also why the
worker runs jobs in its own process (RQ's SimpleWorker) rather than in a fresh
fork per job, where nothing survives from one job to the next.

Every wait on the server is bounded, below JOB_TIMEOUT: RQ's SIGALRM cannot
interrupt libpq, so a job blocked on a lock or a hung server would otherwise
stay STARTED until RQ's maintenance hands it to another worker while this one
still holds it.  The server ends a statement or a lock wait after
WORKER_DB_TIMEOUT seconds; a server that does not answer at all (frozen,
partitioned: its kernel still acknowledges TCP) is given up a little later by
pgbounds' wait callback, which closes the connection.
"""

import psycopg2

import pgbounds

from .config import DEFAULT_DB_TIMEOUT, Config

# A quiet connection is probed after 10 s and dropped after 3 unanswered probes.
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3}
# Past its timeout a server that answers cancels the statement itself; this
# much later we stop waiting for a silent one.
CLIENT_MARGIN_S = 2.0

_url = None
_timeout = DEFAULT_DB_TIMEOUT
_conn = None


def configure(database_url, timeout=DEFAULT_DB_TIMEOUT):
    global _url, _timeout
    discard()
    _url, _timeout = database_url, timeout


def connection():
    """Return the process's connection, opening it on first use or after a failure."""
    global _conn, _url, _timeout
    if _url is None:
        config = Config.from_env()
        _url, _timeout = config.database_url, config.db_timeout
    if _conn is None or _conn.closed:
        pgbounds.install()
        ms = round(_timeout * 1000)
        _conn = psycopg2.connect(
            _url, connect_timeout=5, application_name="survey-worker", **KEEPALIVES,
            options=f"-c statement_timeout={ms} -c lock_timeout={ms}",
            connection_factory=pgbounds.bounded(_timeout + CLIENT_MARGIN_S))
    return _conn


def discard():
    """Forget a connection that failed, so the next job opens a fresh one."""
    global _conn
    if _conn is not None:
        try:
            _conn.close()
        except psycopg2.Error:
            pass
    _conn = None
