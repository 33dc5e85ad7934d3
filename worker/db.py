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

The isolation level is pinned to READ COMMITTED, whatever the server's or the
role's default: the erase-versus-store ordering in db/schema.sql needs each
statement to see what committed before it (and its trigger refuses to run
under any other level).
"""

import time

import psycopg2
from psycopg2.extensions import ISOLATION_LEVEL_READ_COMMITTED

import pgbounds

from .config import DEFAULT_DB_TIMEOUT, Config

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
        conn = psycopg2.connect(_url, application_name="survey-worker", **pgbounds.connect_options(_timeout))
        # Each transaction then begins ISOLATION LEVEL READ COMMITTED, explicitly.
        conn.isolation_level = ISOLATION_LEVEL_READ_COMMITTED
        _conn = conn
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


# While PostgreSQL is down every job fails at once, and a worker would spin
# through the whole queue failing and rescheduling each one: measured, two
# workers burned a full core of a 2-core machine that way during a 10 s
# outage, taking it from the web that keeps accepting.  Pausing before the
# failure is reported keeps the worker near idle; the job still fails and
# retries with RQ's back-off, and every job behind it waits safely queued.
PAUSE_WHEN_DATABASE_DOWN_S = 1.0
# What psycopg2 raises when the server is away or does not answer.
SERVER_AWAY = (psycopg2.OperationalError, psycopg2.InterfaceError)


def execute(statement, params):
    """Every row `statement` returns, in a transaction of its own."""
    return execute_all([(statement, params)])


def execute_all(statements):
    """Every row the (statement, params) pairs return, in one transaction."""
    try:
        conn = connection()
        with conn, conn.cursor() as cur:
            rows = []
            for statement, params in statements:
                cur.execute(statement, params)
                rows.extend(cur.fetchall())
            return rows
    except SERVER_AWAY:
        # The server went away: drop the connection so the retry reconnects.
        discard()
        time.sleep(PAUSE_WHEN_DATABASE_DOWN_S)
        raise
