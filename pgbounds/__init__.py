"""A bound on every wait on PostgreSQL, for the web and the worker alike.

A hung server (frozen, partitioned, a stuck disk) still has its kernel
accept and acknowledge TCP, so neither statement_timeout nor keepalives nor
connect_timeout ends a wait on it.  A connection made with `bounded(s)`
waits through `wait` (psycopg2's wait callback, set by `install`), which
gives up after s seconds per call (connect, a query, a fetch) and closes it.

Both images copy this package (web/Dockerfile, worker/Dockerfile)."""

import select
import time

import psycopg2
import psycopg2.extensions as ext

_EVENTS = {ext.POLL_READ: select.POLLIN, ext.POLL_WRITE: select.POLLOUT}


class DatabaseTimeout(psycopg2.OperationalError):
    """The server did not answer within the connection's wait_timeout."""


class BoundedConnection(ext.connection):
    """A connection whose every wait ends after wait_timeout seconds (None: no bound).

    Set before connecting, so the connect itself is bounded too."""

    def __init__(self, dsn, *args, wait_timeout=None, **kwargs):
        self.wait_timeout = wait_timeout
        super().__init__(dsn, *args, **kwargs)


def bounded(wait_timeout):
    """A connection_factory for psycopg2.connect."""
    return lambda dsn, **kwargs: BoundedConnection(dsn, wait_timeout=wait_timeout, **kwargs)


def wait(conn):
    """psycopg2's wait callback (psycopg2.extras.wait_select, with a deadline).

    Raising here makes psycopg2 close the connection, so a pool drops it."""
    timeout = getattr(conn, "wait_timeout", None)
    deadline = None if timeout is None else time.monotonic() + timeout
    poller = select.poll()
    while (state := conn.poll()) != ext.POLL_OK:
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            raise DatabaseTimeout(f"PostgreSQL did not answer within {timeout}s")
        poller.register(conn.fileno(), _EVENTS[state])
        poller.poll(None if left is None else left * 1000)


def install():
    """psycopg2's wait callback is one per process: every connection, bounded or not, goes through it."""
    ext.set_wait_callback(wait)
