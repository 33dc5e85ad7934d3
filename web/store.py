"""Read-only queries against PostgreSQL; the worker is the only writer."""

import os
import threading

import psycopg2
import psycopg2.extras
import psycopg2.pool
from psycopg2 import sql
from psycopg2.extensions import parse_dsn

import pgbounds
from survey import applied
from submission import META_COLUMNS

from . import reader_slots


# The row in whichever survey's table holds it (one index lookup each), or
# the tombstone an erase left instead, in one round trip.
FIND_IN = "SELECT {name} AS table_name, to_jsonb(v) AS answers, v.stored_at FROM public.{table} AS v " \
          "WHERE v.submission_id = %(id)s"
FIND_SUBMISSION = """
    SELECT f.table_name, f.answers, f.stored_at, e.erased_at
    FROM (SELECT %(id)s::uuid AS submission_id) AS asked
    LEFT JOIN ({tables}) AS f ON true
    LEFT JOIN erasures AS e USING (submission_id)
    LIMIT 1
"""

# Stored rows only: an id with a tombstone is erased, whatever else holds it.
# (db/schema.sql keeps the two apart; this holds if a writer ever did not.)
NOT_ERASED = "NOT EXISTS (SELECT FROM erasures AS e WHERE e.submission_id = v.submission_id)"
# The questions each survey has asked (worker/tables.py), for those no longer asked.
ASKED = "SELECT questions FROM survey_tables WHERE table_name = %s"
EXPORT = "SELECT {columns} FROM public.{table} AS v WHERE {not_erased} ORDER BY stored_at, submission_id"

# How /results sums up each type (survey/questions/): a row per value for the
# choices and the scale, and how many answered every question; the range of
# numbers and dates, and the scale's mean.  One statement over the rows once.
TALLY_PARTS = {
    "value": "SELECT {id} AS question, 'value' AS stat, {col}::text AS value, count(*) AS n "
             "FROM v WHERE {col} IS NOT NULL GROUP BY {col}",
    "values": "SELECT {id}, 'value', picked, count(*) FROM v, unnest({col}) AS picked GROUP BY picked",
    "answered": "SELECT {id}, 'answered', NULL, count({col}) FROM v",
    "range": "SELECT {id}, 'min', min({col})::text, NULL FROM v UNION ALL SELECT {id}, 'max', max({col})::text, NULL FROM v",
    "mean": "SELECT {id}, 'mean', round(avg({col}), 2)::text, NULL FROM v",
}
TALLY_OF = {"single_choice": ("value",), "dropdown": ("value",), "multiple_choice": ("values",),
            "scale": ("value", "mean"), "number": ("range",), "date": ("range",)}
TALLIES = """
    WITH v AS MATERIALIZED (SELECT * FROM public.{table} AS v WHERE {not_erased})
    SELECT NULL AS question, 'total' AS stat, NULL AS value, count(*) AS n FROM v
    {parts}
"""


def tallies_query(table, questions):
    parts = []
    for question in questions:
        names = {"id": sql.Literal(question["id"]), "col": sql.Identifier(question["id"])}
        for part in ("answered", *TALLY_OF.get(question["type"], ())):
            parts.append(sql.SQL("UNION ALL ") + sql.SQL(TALLY_PARTS[part]).format(**names))
    return sql.SQL(TALLIES).format(table=sql.Identifier(table), not_erased=sql.SQL(NOT_ERASED),
                                   parts=sql.SQL("\n").join(parts))
# Rows a server-side cursor hands over per round trip while exporting.
EXPORT_BATCH = 1000


class Store:
    def __init__(self, database_url, pool_size=2, timeout=1.0, readers=1, surveys=()):
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
        tables = sorted({survey.table for survey in surveys} or {"cats"})
        self._find = sql.SQL(FIND_SUBMISSION).format(tables=sql.SQL(" UNION ALL ").join(
            sql.SQL(FIND_IN).format(name=sql.Literal(t), table=sql.Identifier(t)) for t in tables))

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

    def check_applied(self, surveys):
        """survey/applied.py's check, when the database answers.  One that is
        away is no reason to refuse to start: the web takes answers through
        an outage, and the worker makes the same check before it stores."""
        try:
            conn = self._connect(cursor_factory=None)
        except psycopg2.OperationalError:
            return
        try:
            with conn, conn.cursor() as cur:
                applied.check(cur, surveys)
        except psycopg2.OperationalError:
            pass  # a query cut off by the timeout: the same outage
        except psycopg2.errors.UndefinedTable:
            pass  # no schema yet: the first start, whose migration is about to make it
        finally:
            conn.close()

    def connect_as(self, user, password):
        """A connection as another role (the auditor), to the same server and
        database as ours, with the password that person gave; psycopg2 raises
        OperationalError when PostgreSQL turns it away."""
        params = parse_dsn(self.database_url)
        params.update(user=user, password=password)
        with self.readers.hold():
            return psycopg2.connect(application_name="survey-web-auditor", **self.connect_options, **params)

    def _fetch(self, sql, params=None, conn=None, keep=False):
        """Every row of one short query: on `conn` (the auditor's own, closed
        afterwards unless `keep`) if given, else on a pooled connection of
        ours.  Raises DatabaseBusy at once if WEB_DB_READERS processes are
        reading already."""
        if conn is None:
            with self.readers.hold():
                return self._fetch_pooled(sql, params)
        try:
            with self.readers.hold(), conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
                cur.execute(sql, params)
                return cur.fetchall()
        finally:
            if not keep:
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
        """The stored row ({table_name, answers, stored_at}), or its tombstone
        (erased_at set, no answers); None if neither."""
        row = self._fetch(self._find, {"id": submission_id})[0]
        return row if row["stored_at"] or row["erased_at"] else None

    def ping(self):
        self._fetch("SELECT 1")

    def questions(self, survey, conn=None):
        """Every question `survey` has asked, as worker/tables.py recorded
        them ({id, type, label, asked, choices}): those no longer in the file
        too.  Before its first migration, the file's own."""
        rows = self._fetch(ASKED, (survey.table,), conn=conn, keep=conn is not None)
        if rows:
            return rows[0]["questions"]
        return [{"id": q.id, "type": q.type, "label": q.label, "asked": True,
                 "choices": [[c.value, c.label] for c in q.choices]} for q in survey.questions]

    def tallies(self, survey, questions, conn=None):
        """{question id: {value: n}, or {"answered", "min", "max", "mean"}}
        and "total", from one statement (one snapshot)."""
        rows = self._fetch(tallies_query(survey.table, questions), conn=conn)
        result = {"total": 0}
        for row in rows:
            if row["question"] is None:
                result["total"] = row["n"]
                continue
            entry = result.setdefault(row["question"], {"values": {}, "answered": 0})
            if row["stat"] == "value":
                entry["values"][row["value"]] = row["n"]
            elif row["stat"] == "answered":
                entry["answered"] = row["n"]
            else:
                entry[row["stat"]] = row["value"]
        return result

    def export_rows(self, survey, conn=None):
        """The export's columns, and every stored row of `survey` as a tuple
        in their order, oldest first.

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
            table = sql.Identifier(survey.table)
            with conn.cursor() as probe:
                probe.execute(sql.SQL("SELECT * FROM public.{} LIMIT 0").format(table))
                names = [column.name for column in probe.description]
            questions = [n for n in names if n not in META_COLUMNS]
            columns = ["submission_id", *questions, "submitted_at", "stored_at"]
            cur = conn.cursor(name="export")
            cur.itersize = EXPORT_BATCH
            cur.execute(sql.SQL(EXPORT).format(columns=sql.SQL(", ").join(map(sql.Identifier, columns)),
                                               table=table, not_erased=sql.SQL(NOT_ERASED)))
        except BaseException:
            conn.close()
            raise
        return columns, self._rows(conn, cur)

    @staticmethod
    def _rows(conn, cur):
        try:
            yield from cur
        finally:
            conn.close()
