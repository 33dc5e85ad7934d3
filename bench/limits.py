"""The machine's own limits, measured against the same servers: Redis list
operations (redis-benchmark) and PostgreSQL single-row INSERT commits (pgbench)."""

import csv
import io
import re
import subprocess
import tempfile

from loopback.servers import pg_bindir

# One autocommitted row per transaction, shaped like a submission, into a
# copy of cats (same columns, key and index) so the real table stays empty.
PGBENCH_TABLE = "CREATE TABLE IF NOT EXISTS cats_pgbench (LIKE answers.cats INCLUDING ALL)"
PGBENCH_SCRIPT = """\
INSERT INTO cats_pgbench (submission_id, name, coat, donut, submitted_at)
VALUES (gen_random_uuid(), 'Pika', 'tortie', 'strawberry', now())
ON CONFLICT (submission_id) DO NOTHING;
"""


def redis_lists(port, requests=50_000):
    """LPUSH and RPOP requests/s, 50 clients, no pipelining."""
    out = subprocess.run(["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-t", "lpush,rpop",
                          "-n", str(requests), "-c", "50", "--csv"],
                         capture_output=True, text=True, check=True, timeout=120).stdout
    rates = {}
    for row in csv.reader(io.StringIO(out)):
        if row and row[0] in ("LPUSH", "RPOP"):
            rates[row[0].lower()] = float(row[1])
    return rates


def pg_inserts(stack, clients, seconds):
    """Committed single-row INSERTs per second from `clients` connections."""
    stack.sql(PGBENCH_TABLE)
    with tempfile.NamedTemporaryFile("w", suffix=".sql") as script:
        script.write(PGBENCH_SCRIPT)
        script.flush()
        out = subprocess.run(
            [f"{pg_bindir()}/pgbench", "-n", "-f", script.name, "-c", str(clients), "-j", str(min(clients, 2)),
             "-T", str(seconds), stack.database_url],
            capture_output=True, text=True, timeout=seconds + 60)
    if out.returncode != 0:
        raise RuntimeError(f"pgbench failed: {out.stderr[-2000:]}")
    stack.sql("TRUNCATE cats_pgbench")
    return float(re.search(r"tps = ([0-9.]+)", out.stdout).group(1))
