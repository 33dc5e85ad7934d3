"""Stored rows per second for RQ's forking Worker against SimpleWorker, each
draining the same backlog of real submissions into a throwaway PostgreSQL.

    .venv/bin/python -m bench.worker_classes [N]
"""

import os
import sys
import time
import uuid
from datetime import datetime, timezone

import psycopg2
import redis
from rq import Queue, SimpleWorker, Worker
from rq.serializers import JSONSerializer

from loopback.servers import PostgresServer, RedisServer
from web import create_app
from worker import db
from worker.config import Config
from worker.migrate import apply_schema


def enqueue_backlog(app, n):
    queue = app.extensions["submission_queue"]
    now = datetime.now(timezone.utc).isoformat()
    for i in range(n):
        queue.enqueue({"id": str(uuid.uuid4()), "name": f"cat {i}", "coat": "tabby", "donut": "glazed", "submitted_at": now})


def count_rows(url):
    conn = psycopg2.connect(url)
    with conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM cats")
        n = cur.fetchone()[0]
        cur.execute("TRUNCATE answers.cats")
    conn.close()
    return n


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    pg, rd = PostgresServer(), RedisServer()
    try:
        url = pg.create_database("survey")
        apply_schema(url, Config.from_env({}).schema_path)
        os.environ.update(DATABASE_URL=url, REDIS_URL=rd.url, SECRET_KEY="bench")
        app = create_app()
        conn = redis.Redis.from_url(rd.url)
        db.configure(url)
        print(f"{'worker class':<14} {'jobs':>6} {'seconds':>8} {'rows/s':>8}")
        for cls in (Worker, SimpleWorker):
            enqueue_backlog(app, n)
            q = Queue("submissions", connection=conn, serializer=JSONSerializer)
            worker = cls([q], connection=conn, serializer=JSONSerializer)
            start = time.perf_counter()
            worker.work(burst=True, logging_level="WARNING")
            elapsed = time.perf_counter() - start
            stored = count_rows(url)
            assert stored == n, f"{cls.__name__}: {stored} rows for {n} jobs"
            print(f"{cls.__name__:<14} {n:>6} {elapsed:>8.2f} {n / elapsed:>8.0f}")
    finally:
        pg.destroy()
        rd.destroy()


if __name__ == "__main__":
    main()
