"""A million-row /results.csv through the real gunicorn finishes whole,
though it takes longer than the worker timeout: the export beats gunicorn's
heartbeat as it streams (web/heartbeat.py), so only a stuck worker is killed."""

import base64
import time
import urllib.request

import psycopg2

from tests.conftest import AUDITOR
from tests.gunicorn import Gunicorn

ROWS = 1_000_000
# Far below how long the export takes, so a worker that did not prove
# progress while streaming would be killed part-way.
TIMEOUT = 2


def test_a_million_row_export_completes(auditor_env, tmp_path):
    env = auditor_env
    conn = psycopg2.connect(env["DATABASE_URL"])
    with conn, conn.cursor() as cur:
        # The rows only: the store's triggers (db/schema.sql) are not what this tests, and would double the time.
        cur.execute("SET LOCAL session_replication_role = replica")
        cur.execute("INSERT INTO cats (submission_id, name, coat, donut, submitted_at) "
                    "SELECT gen_random_uuid(), 'Cat ' || i, 'grey', 'maple', now() FROM generate_series(1, %s) i",
                    (ROWS,))
        cur.execute("SELECT count(*) FROM cats")
        (in_table,) = cur.fetchone()
    conn.close()
    assert in_table == ROWS

    server = Gunicorn(env, tmp_path, tmp_path / "metrics", workers=1, args=["--timeout", str(TIMEOUT)])
    try:
        request = urllib.request.Request(
            f"http://127.0.0.1:{server.port}/results.csv",
            headers={"Authorization": "Basic " + base64.b64encode(":".join(AUDITOR).encode()).decode()})
        lines = 0
        started = time.monotonic()
        with urllib.request.urlopen(request, timeout=60) as response:
            assert response.status == 200
            # A truncated chunked body raises IncompleteRead here.  Counting
            # "\n" alone: a "\r\n" may straddle two reads, and no name has a newline.
            while chunk := response.read(1 << 20):
                lines += chunk.count(b"\n")
                last = chunk
        elapsed = time.monotonic() - started
    finally:
        server.stop()
    assert lines == 1 + in_table
    assert last.endswith(b"\r\n")  # ends on a whole row
    # Long enough that the timeout would have struck without the heartbeat.
    assert elapsed > 2 * TIMEOUT, elapsed
    log = server.log_path.read_text()
    assert "WORKER TIMEOUT" not in log
