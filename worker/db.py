"""The worker's PostgreSQL connection, opened once and reused across jobs.

A connection costs a few milliseconds to open and an insert well under one, so
opening one per job would cost more than the job itself.  That is also why the
worker runs jobs in its own process (RQ's SimpleWorker) rather than in a fresh
fork per job, where nothing survives from one job to the next.
"""

import psycopg2

from .config import Config

_url = None
_conn = None


def configure(database_url):
    global _url
    discard()
    _url = database_url


def connection():
    """Return the process's connection, opening it on first use or after a failure."""
    global _conn, _url
    if _url is None:
        _url = Config.from_env().database_url
    if _conn is None or _conn.closed:
        _conn = psycopg2.connect(_url, connect_timeout=5, application_name="survey-worker")
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
