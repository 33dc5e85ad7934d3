"""`python -m worker`: wait for Redis and PostgreSQL, apply the schema, then
work the submissions queue until told to stop (SIGTERM finishes the job in
hand first)."""

import logging
import os
import signal
import sys
import time

# The web's multi-process metrics directory means nothing to this single
# process; inherited (make run passes one environment to all), it would put the
# worker's counters among the web's.  prometheus-client reads it on import.
os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)

import psycopg2
import redis
from rq import Queue
from rq.serializers import JSONSerializer

import redisbounds
import survey
from survey import applied

from . import db, deliveries, failures, logs, metrics
from .batch_worker import BatchWorker
from .config import Config
from .migrate import migrate
from .tables import SurveyEditError
from .wait import wait_for

log = logging.getLogger("worker")


def build_worker(config, connection):
    queue = Queue(config.queue_name, connection=connection, serializer=JSONSerializer)
    return BatchWorker(
        [queue],
        batch_size=config.batch_size,
        connection=connection,
        serializer=JSONSerializer,
        maintenance_interval=config.maintenance_interval,
        worker_ttl=config.worker_ttl,
        # First spend a permanent failure's retries, keep an erase retrying
        # through an outage, then count retries and final failures; then RQ
        # handles the job as usual.
        exception_handlers=[failures.fail_fast, failures.erase_until_done, metrics.count_failure],
    )


def _exit_on_signal(signum, frame):
    raise SystemExit(0)


def work(config, connection, burst, build=build_worker, name_file=None):
    """Run RQ's work loop until asked to stop, starting a fresh one each time
    a Redis outage ends it, however long Redis stays away (as RQ's own loop
    waits for it when idle): a supervisor gives up on a worker that keeps
    quitting (make run's after about half an hour), while Redis comes back.

    Each loop has a Redis client of its own, closed when the loop ends, and
    `connection` (which waits for Redis between loops) is never RQ's.  RQ
    stops its pubsub thread with a one-second join, while the thread may
    wait up to a minute for a message; its connection goes back to the pool,
    and a pool used again would hand that connection to the next loop with
    the thread still reading from it: it takes replies meant for the loop
    (a job moved by BLMOVE to RQ's intermediate list, whose id never
    arrives, waits there a minute for RQ's maintenance)."""
    while True:
        worker = None
        own = redisbounds.connect(config.redis_url)
        try:
            worker = build(config, own)  # names itself to Redis
            (name_file or config.name_file).write_text(worker.name)
            # The scheduler process moves retries whose back-off has elapsed back onto the queue.
            worker.work(burst=burst, with_scheduler=True, logging_level=config.log_level)
        except redis.RedisError as exc:
            log.error("worker loop lost Redis: %s", exc)
            try:
                worker and worker.unsubscribe()
            except Exception:  # noqa: BLE001 - best effort; Redis is gone anyway
                pass
        finally:
            own.close()  # what a straggling thread still holds is disconnected, and no one takes it again
        if burst or (worker and worker.stop_requested):
            return 0
        # Between two loops a stop request must end the process, not RQ's old handlers.
        signal.signal(signal.SIGTERM, _exit_on_signal)
        signal.signal(signal.SIGINT, _exit_on_signal)
        log.warning("worker loop ended without a stop request; starting a new one once Redis answers")
        wait_for("redis", connection.ping)


def check_applied(config, surveys):
    """applied.NotApplied unless the database has taken these files (another
    process migrates: compose's migrate, the Kubernetes Job, make run's database)."""
    conn = psycopg2.connect(config.database_url, connect_timeout=5, application_name="survey-worker")
    try:
        with conn, conn.cursor() as cur:
            applied.check(cur, surveys)
    finally:
        conn.close()


def main(argv=None, startup_timeout=300):
    config = Config.from_env()
    logs.setup(config.log_format, config.log_level, config.log_key)
    # The worker stores whatever the web accepted, under any survey file,
    # but a broken file must stop the whole pipeline before it serves.
    try:
        surveys = config.surveys()
    except survey.SurveyFileError as exc:
        sys.exit(f"survey: {exc}")
    deliveries.configure(surveys)  # whose webhooks a store and an erase tell
    burst = "--burst" in (argv or sys.argv[1:])
    deadline = time.monotonic() + startup_timeout

    # For waiting on Redis; each RQ loop gets a client of its own (work()), whose
    # reply timeout RQ raises above its blocking dequeue's (WORKER_TTL - 5 s).
    connection = redisbounds.connect(config.redis_url)
    wait_for("redis", connection.ping, deadline)
    if config.migrate_on_start:
        try:
            wait_for("postgresql", lambda: migrate(config, surveys), deadline)
        except SurveyEditError as exc:
            sys.exit(f"survey: {exc}")
    else:
        try:
            wait_for("postgresql", lambda: check_applied(config, surveys), deadline)
        except applied.NotApplied as exc:
            sys.exit(f"survey: {exc}")
    db.configure(config.database_url, config.db_timeout)
    if config.metrics_port:
        metrics.serve(config.metrics_host, config.metrics_port)
    return work(config, connection, burst)


if __name__ == "__main__":
    sys.exit(main())
