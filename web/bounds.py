"""Bounds on every wait the web makes on PostgreSQL.

A hung server (frozen, partitioned, a stuck disk) still has its kernel
accept and acknowledge TCP, so neither statement_timeout nor keepalives nor
connect_timeout ends a wait on it.  Two things keep it from taking the site:

- every connection of ours waits through `wait` (psycopg2's wait callback),
  which gives up after the connection's `wait_timeout` seconds per call
  (connect, a query, a fetch) and closes it;
- at most WEB_DB_READERS of this host's gunicorn processes may be reading
  PostgreSQL at once (`Slots`), so the others always serve the form and
  the posts, which need only Redis.
"""

import fcntl
import os
import select
import tempfile
import threading
import time
from contextlib import contextmanager

import psycopg2
import psycopg2.extensions as ext

_EVENTS = {ext.POLL_READ: select.POLLIN, ext.POLL_WRITE: select.POLLOUT}


class DatabaseTimeout(psycopg2.OperationalError):
    """The server did not answer within the connection's wait_timeout."""


class DatabaseBusy(psycopg2.OperationalError):
    """Every reader slot is taken: answering without PostgreSQL beats waiting."""


class BoundedConnection(ext.connection):
    """A connection whose every wait ends after wait_timeout seconds (None: no bound).

    Set before connecting, so the connect itself is bounded too."""

    def __init__(self, dsn, *args, wait_timeout=None, **kwargs):
        self.wait_timeout = wait_timeout
        super().__init__(dsn, *args, **kwargs)


def bounded(wait_timeout):
    """A connection_factory for psycopg2.connect."""
    return lambda dsn, **kwargs: BoundedConnection(dsn, wait_timeout=wait_timeout, **kwargs)


# Twin of worker/db.py's wait: each image ships only its own package.
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
    ext.set_wait_callback(wait)


class Slots:
    """A semaphore across this host's processes: `n` lock files under one
    directory, made before gunicorn forks (preload_app), each taken with
    flock.  The kernel releases a dead process's lock, so a worker that
    gunicorn kills mid-query leaks no slot.  One request at a time per
    process (sync workers), so one open file per slot per process is enough."""

    def __init__(self, n):
        if n < 1:
            raise ValueError(f"WEB_DB_READERS must be at least 1, not {n}")
        self.n = n
        self.directory = tempfile.mkdtemp(prefix="survey-web-db-readers-")
        self._files, self._pid = None, None
        self._lock = threading.Lock()

    def _open(self):
        # After a fork, our own open files: a lock on an inherited one would be shared with the parent.
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    self._files = [open(os.path.join(self.directory, str(i)), "a") for i in range(self.n)]
                    self._pid = os.getpid()
        return self._files

    def acquire(self):
        """Take a free slot without waiting and return its release(); DatabaseBusy if none is free."""
        for file in self._open():
            try:
                fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            return lambda: fcntl.flock(file, fcntl.LOCK_UN)
        raise DatabaseBusy(f"all {self.n} of the web's PostgreSQL reader slots are busy")

    @contextmanager
    def hold(self):
        release = self.acquire()
        try:
            yield
        finally:
            release()
