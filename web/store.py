"""Read-only queries against PostgreSQL; the worker is the only writer."""

import psycopg2
import psycopg2.extras

FIND_SUBMISSION = "SELECT name, coat, donut, submitted_at, stored_at FROM cats WHERE submission_id = %s"


class Store:
    def __init__(self, database_url):
        self.database_url = database_url

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
