"""Read-only queries against PostgreSQL; the worker is the only writer."""

import os
import threading

import psycopg2
import psycopg2.extras
import psycopg2.pool
from psycopg2.extensions import parse_dsn

import pgbounds

from . import reader_slots

# The row, or the tombstone an erase left instead, in one round trip.
FIND_SUBMISSION = """
    SELECT c.name, c.coat, c.donut, c.submitted_at, c.stored_at, e.erased_at
    FROM (SELECT %s::uuid AS submission_id) AS asked
    LEFT JOIN cats AS c USING (submission_id)
    LEFT JOIN erasures AS e USING (submission_id)
"""

# Stored rows only: an id with a tombstone is erased, whatever else holds it.
# (db/schema.sql keeps the two apart; this holds if a writer ever did not.)
NOT_ERASED = "NOT EXISTS (SELECT FROM erasures AS e WHERE e.submission_id = cats.submission_id)"

# One statement, so the two tallies and the total come from one snapshot.
TALLIES = """
    SELECT coat, donut, count(*) AS cats
    FROM cats
    WHERE NOT EXISTS (SELECT FROM erasures AS e WHERE e.submission_id = cats.submission_id)
    GROUP BY GROUPING SETS ((coat), (donut), ())
"""

EXPORT_COLUMNS = ("submission_id", "name", "coat", "donut", "submitted_at", "stored_at")
# bandit B608 sees a query built from strings; these are the constant column
# names and the clause above, never input, so there is nothing to inject.
EXPORT = (f"SELECT {', '.join(EXPORT_COLUMNS)} FROM cats WHERE {NOT_ERASED} "  # nosec B608
          "ORDER BY stored_at, submission_id")
# Rows a server-side cursor hands over per round trip while exporting.
EXPORT_BATCH = 1000


class Store:
    def __init__(self, database_url, pool_size=2, timeout=1.0, readers=1):
        if pool_size < 1:
            # Caught at start-up, not as a 503 on every query.
            raise ValueError(f"WEB_DB_POOL_SIZE must be at least 1, not {pool_size}")
        self.database_url = database_url
        self.pool_size = pool_size
        self.readers = reader_slots.Slots(readers)
        self.connect_options = pgbounds.connect_options(timeout)
        self._pool = None
        self._pool_pid = None
        self._pool_lock = threading.Lock()
        self._inherited = []

    def _connect(self, cursor_factory=psycopg2.extras.RealDictCursor):
        return psycopg2.connect(self.database_url, cursor_factory=cursor_factory,
                                application_name="survey-web", **self.connect_options)

    def _process_pool(self):
        """This process's pool, made on its first query.

        gunicorn creates the app before it forks (preload_app), and a
        connection must never be shared by two processes, so each worker makes
        its own pool; one made before a fork is left alone (kept referenced,
        so that closing it here cannot end the parent's sessions)."""
        pid = os.getpid()
        if self._pool_pid != pid:
            with self._pool_lock:
                if self._pool_pid != pid:
                    if self._pool is not None:
                        self._inherited.append(self._pool)
                    # minconn = maxconn: psycopg2's pool closes connections
                    # returned beyond minconn, so this keeps them all open.
                    self._pool = psycopg2.pool.ThreadedConnectionPool(
                        self.pool_size, self.pool_size, self.database_url,
                        cursor_factory=psycopg2.extras.RealDictCursor, application_name="survey-web",
                        **self.connect_options)
                    self._pool_pid = pid
        return self._pool

    def connect_as(self, user, password):
        """A connection as another role (the auditor), to the same server and
        database as ours, with the password that person gave; psycopg2 raises
        OperationalError when PostgreSQL turns it away."""
        params = parse_dsn(self.database_url)
        params.update(user=user, password=password)
        with self.readers.hold():
            return psycopg2.connect(application_name="survey-web-auditor", **self.connect_options, **params)

    def _fetch(self, sql, params=None, conn=None):
        """Every row of one short query: on `conn` (the auditor's own, closed
        afterwards) if given, else on a pooled connection of ours.  Raises
        DatabaseBusy at once if WEB_DB_READERS processes are reading already."""
        if conn is None:
            with self.readers.hold():
                return self._fetch_pooled(sql, params)
        try:
            with self.readers.hold(), conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
                cur.execute(sql, params)
                return cur.fetchall()
        finally:
            conn.close()

    def _fetch_pooled(self, sql, params):
        """Every row of one short query, on a pooled connection.

        A connection the server dropped (a PostgreSQL restart ends every
        session) is discarded, never put back, and the query is tried again
        on the next one: at most pool_size + 1 tries reach a new connection.
        Failing to connect is not retried (the database is down), nor is
        a timeout (it is hung: one wait is all a page can afford)."""
        pool = self._process_pool()
        for attempt in range(self.pool_size + 1):
            conn = pool.getconn()
            try:
                # Autocommit: an idle pooled session holds no transaction, no snapshot.
                conn.autocommit = True
                with conn.cursor() as cur:
                    cur.execute(sql, params)
                    rows = cur.fetchall()
            except BaseException as exc:
                # closed is nonzero once libpq has seen the connection die.
                broken = bool(conn.closed)
                pool.putconn(conn, close=broken)
                if broken and attempt < self.pool_size and not isinstance(exc, pgbounds.DatabaseTimeout):
                    continue
                raise
            pool.putconn(conn)
            return rows

    def fetch_one(self, sql, params=None):
        """The one row of a short query, as a tuple in its columns' order."""
        return tuple(self._fetch(sql, params)[0].values())

    def find_submission(self, submission_id):
        """The stored row, or its tombstone (erased_at set, no answers); None if neither."""
        row = self._fetch(FIND_SUBMISSION, (submission_id,))[0]
        return row if row["stored_at"] or row["erased_at"] else None

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
