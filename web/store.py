"""Read-only queries against PostgreSQL; the worker is the only writer
(except in the benchmark's naive mode, SUBMIT_MODE=direct)."""

import os

import psycopg2
import psycopg2.extras

FIND_SUBMISSION = "SELECT name, coat, donut, submitted_at, stored_at FROM cats WHERE submission_id = %s"


class Store:
    def __init__(self, database_url):
        self.database_url = database_url
        self._writer = None  # (pid, connection) for insert_submission

    def _connect(self):
        return psycopg2.connect(
            self.database_url, connect_timeout=2, application_name="survey-web",
            cursor_factory=psycopg2.extras.RealDictCursor,
        )

    def find_submission(self, submission_id):
        conn = self._connect()
        try:
            with conn.cursor() as cur:
                cur.execute(FIND_SUBMISSION, (submission_id,))
                return cur.fetchone()
        finally:
            conn.close()

    def insert_submission(self, submission):
        """Benchmark only (SUBMIT_MODE=direct): the naive design, storing the row
        inside the request.  It gets the naive design's best case, one
        connection per gunicorn process reused across requests, and the
        worker's own statement, so only where the insert runs differs."""
        # Imported here: the web image does not ship the worker's code.
        from worker.jobs import INSERT_SUBMISSION

        pid = os.getpid()
        if self._writer is None or self._writer[0] != pid or self._writer[1].closed:
            # Opened after gunicorn forks: a connection must not be shared across processes.
            self._writer = (pid, psycopg2.connect(self.database_url, connect_timeout=2, application_name="survey-web-direct"))
        conn = self._writer[1]
        try:
            with conn, conn.cursor() as cur:
                cur.execute(INSERT_SUBMISSION, submission)
        except (psycopg2.OperationalError, psycopg2.InterfaceError):
            conn.close()
            raise
