"""The web's reader slots: at most WEB_DB_READERS of this host's gunicorn
processes may be reading PostgreSQL at once (`Slots`), so that with the
server hung the others still serve the form and the posts, which need only
Redis.  (Each wait on the server is bounded too, by pgbounds/.)
"""

import fcntl
import os
import tempfile
import threading
from contextlib import contextmanager

import psycopg2


class DatabaseBusy(psycopg2.OperationalError):
    """Every reader slot is taken: answering without PostgreSQL beats waiting."""


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
