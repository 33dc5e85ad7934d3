"""Read-only queries against PostgreSQL; the worker is the only writer."""

import psycopg2
import psycopg2.extras

FIND_SUBMISSION = "SELECT name, coat, donut, submitted_at, stored_at FROM cats WHERE submission_id = %s"

# One statement, so the two tallies and the total come from one snapshot.
TALLIES = """
    SELECT coat, donut, count(*) AS cats
    FROM cats
    GROUP BY GROUPING SETS ((coat), (donut), ())
"""

EXPORT_COLUMNS = ("submission_id", "name", "coat", "donut", "submitted_at", "stored_at")
EXPORT = f"SELECT {', '.join(EXPORT_COLUMNS)} FROM cats ORDER BY stored_at, submission_id"
# Rows a server-side cursor hands over per round trip while exporting.
EXPORT_BATCH = 1000


class Store:
    def __init__(self, database_url):
        self.database_url = database_url

    def _connect(self, cursor_factory=psycopg2.extras.RealDictCursor):
        return psycopg2.connect(
            self.database_url, connect_timeout=2, application_name="survey-web",
            cursor_factory=cursor_factory,
        )

    def _fetch(self, sql, params=None):
        """Every row of one short query, on a connection of its own."""
        conn = self._connect()
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall()
        finally:
            conn.close()

    def find_submission(self, submission_id):
        rows = self._fetch(FIND_SUBMISSION, (submission_id,))
        return rows[0] if rows else None

    def ping(self):
        self._fetch("SELECT 1")

    def tallies(self):
        """{"coat": {value: n}, "donut": {value: n}, "total": n}."""
        rows = self._fetch(TALLIES)
        result = {"coat": {}, "donut": {}, "total": 0}
        for row in rows:
            if row["coat"] is not None:
                result["coat"][row["coat"]] = row["cats"]
            elif row["donut"] is not None:
                result["donut"][row["donut"]] = row["cats"]
            else:
                result["total"] = row["cats"]
        return result

    def export_rows(self):
        """Every stored row as a tuple in EXPORT_COLUMNS order, oldest first.

        Connects and runs the query now, so a database outage is raised here
        rather than half-way through a response; the rows then come from a
        server-side cursor a batch at a time, so memory stays flat however
        many rows there are.  Close the returned generator to end early.
        """
        # Plain tuples for speed; a read-only transaction, as the export only reads.
        conn = self._connect(cursor_factory=None)
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
