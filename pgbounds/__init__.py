"""A bound on every wait on PostgreSQL, for the web and the worker alike.

A hung server (frozen, partitioned, a stuck disk) still has its kernel
accept and acknowledge TCP, so neither statement_timeout nor keepalives nor
connect_timeout ends a wait on it.  A connection made with `bounded(s)`
waits through `wait` (psycopg2's wait callback, set by `install`), which
gives up after s seconds per call (connect, a query, a fetch) and closes it.
`connect_options` gives every process's connections the same bounds: the
server's own statement and lock timeouts, keepalives, and that client-side
wait a little past them.

Both images copy this package (web/Dockerfile, worker/Dockerfile)."""

import select
import time

import psycopg2
import psycopg2.extensions as ext

_EVENTS = {ext.POLL_READ: select.POLLIN, ext.POLL_WRITE: select.POLLOUT}

# A quiet connection is probed after 5 s and dropped after 3 unanswered probes.
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 1, "keepalives_count": 3}
# Past its timeout a server that answers cancels the statement itself (and
# the connection stays usable); this much later we stop waiting for a silent one.
CLIENT_MARGIN_S = 0.5


class DatabaseTimeout(psycopg2.OperationalError):
    """The server did not answer within the connection's wait_timeout."""


class BoundedConnection(ext.connection):
    """A connection whose every wait ends after wait_timeout seconds (None: no
    bound), and whose connect ends after connect_timeout (default the same).

    Set before connecting, so the connect itself is bounded too."""

    def __init__(self, dsn, *args, wait_timeout=None, connect_timeout=None, **kwargs):
        self.wait_timeout = wait_timeout if connect_timeout is None else connect_timeout
        super().__init__(dsn, *args, **kwargs)
        self.wait_timeout = wait_timeout


def bounded(wait_timeout, connect_timeout=None):
    """A connection_factory for psycopg2.connect."""
    return lambda dsn, **kwargs: BoundedConnection(dsn, wait_timeout=wait_timeout,
                                                   connect_timeout=connect_timeout, **kwargs)


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


def connect_options(timeout, statement_timeout=None):
    """psycopg2.connect's keyword arguments for a connection whose every wait
    ends: the server cancels a statement after `statement_timeout` seconds
    (default `timeout`) and a lock wait after `timeout`, and we give up on a
    silent server a little after the longer of the two (a connect, a little
    after `timeout`)."""
    statement_timeout = timeout if statement_timeout is None else statement_timeout
    install()
    return {
        **KEEPALIVES,
        "connect_timeout": max(2, round(timeout)),  # libpq's least; the wait bound ends it sooner
        "options": f"-c statement_timeout={round(statement_timeout * 1000)} -c lock_timeout={round(timeout * 1000)}",
        "connection_factory": bounded(max(timeout, statement_timeout) + CLIENT_MARGIN_S, timeout + CLIENT_MARGIN_S),
    }
