"""Read-only queries against PostgreSQL; the worker is the only writer
(except in the benchmark's naive mode, SUBMIT_MODE=direct)."""

import os

import psycopg2
import psycopg2.extras
from psycopg2.extensions import parse_dsn

FIND_SUBMISSION = "SELECT name, coat, donut, submitted_at, stored_at FROM cats WHERE submission_id = %s"

# One statement, so the two tallies and the total come from one snapshot.
TALLIES = """
    SELECT coat, donut, count(*) AS cats
    FROM cats
    GROUP BY GROUPING SETS ((coat), (donut), ())
"""

EXPORT_COLUMNS = ("submission_id", "name", "coat", "donut", "submitted_at", "stored_at")
# bandit B608 sees a query built from strings; these are the constant column
# names above, never input, so there is nothing to inject.
EXPORT = f"SELECT {', '.join(EXPORT_COLUMNS)} FROM cats ORDER BY stored_at, submission_id"  # nosec B608
# Rows a server-side cursor hands over per round trip while exporting.
EXPORT_BATCH = 1000


class Store:
    def __init__(self, database_url):
        self.database_url = database_url
        self._writer = None  # (pid, connection) for insert_submission

    def _connect(self, cursor_factory=psycopg2.extras.RealDictCursor):
        return psycopg2.connect(
            self.database_url, connect_timeout=2, application_name="survey-web",
            cursor_factory=cursor_factory,
        )

    def connect_as(self, user, password):
        """A connection as another role (the auditor), to the same server and
        database as ours, with the password that person gave; psycopg2 raises
        OperationalError when PostgreSQL turns it away."""
        params = parse_dsn(self.database_url)
        params.update(user=user, password=password)
        return psycopg2.connect(connect_timeout=2, application_name="survey-web-auditor", **params)

    def _fetch(self, sql, params=None, conn=None):
        """Every row of one short query, on a connection of its own (or the
        one given, which is then closed too)."""
        conn = conn or self._connect()
        try:
            with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
                cur.execute(sql, params)
                return cur.fetchall()
        finally:
            conn.close()

    def find_submission(self, submission_id):
        rows = self._fetch(FIND_SUBMISSION, (submission_id,))
        return rows[0] if rows else None

    def ping(self):
        self._fetch("SELECT 1")

    def tallies(self, conn=None):
        """{"coat": {value: n}, "donut": {value: n}, "total": n}."""
        rows = self._fetch(TALLIES, conn=conn)
        result = {"coat": {}, "donut": {}, "total": 0}
        for row in rows:
            if row["coat"] is not None:
                result["coat"][row["coat"]] = row["cats"]
            elif row["donut"] is not None:
                result["donut"][row["donut"]] = row["cats"]
            else:
                result["total"] = row["cats"]
        return result

    def export_rows(self, conn=None):
        """Every stored row as a tuple in EXPORT_COLUMNS order, oldest first.

        Connects and runs the query now, so a database outage is raised here
        rather than half-way through a response; the rows then come from a
        server-side cursor a batch at a time, so memory stays flat however
        many rows there are.  Close the returned generator to end early.
        On `conn` (the auditor's) if given; it is closed with the generator.
        """
        # Plain tuples for speed; a read-only transaction, as the export only reads.
        conn = conn or self._connect(cursor_factory=None)
        try:
            conn.set_session(readonly=True)
            cur = conn.cursor(name="export")
            cur.itersize = EXPORT_BATCH
            cur.execute(EXPORT)
        except BaseException:
            conn.close()
            raise
        return self._rows(conn, cur)

    @staticmethod
    def _rows(conn, cur):
        try:
            yield from cur
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
