"""`python -m worker`: wait for Redis and PostgreSQL, apply the schema, then
work the submissions queue until told to stop (SIGTERM finishes the job in
hand first)."""

import logging
import sys
import time

import psycopg2
import redis
from rq import Queue
from rq.serializers import JSONSerializer

from . import db
from .config import Config
from .migrate import apply_schema
from .survey_worker import SurveyWorker

log = logging.getLogger("worker")


def wait_for(what, attempt, deadline):
    """Retry `attempt` with backoff: in a stack started all at once the worker
    often comes up before its servers, and should wait rather than crash."""
    delay = 0.2
    while True:
        try:
            return attempt()
        except (redis.RedisError, psycopg2.OperationalError) as exc:
            if time.monotonic() > deadline:
                raise
            log.warning("waiting for %s: %s", what, str(exc).strip())
            time.sleep(delay)
            delay = min(delay * 2, 5)


def build_worker(config, connection):
    queue = Queue(config.queue_name, connection=connection, serializer=JSONSerializer)
    return SurveyWorker(
        [queue],
        connection=connection,
        serializer=JSONSerializer,
        maintenance_interval=config.maintenance_interval,
        worker_ttl=config.worker_ttl,
    )


def main(argv=None, startup_timeout=300):
    config = Config.from_env()
    logging.basicConfig(level=config.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    burst = "--burst" in (argv or sys.argv[1:])
    deadline = time.monotonic() + startup_timeout

    connection = redis.Redis.from_url(config.redis_url)
    wait_for("redis", connection.ping, deadline)
    wait_for("postgresql", lambda: apply_schema(config.database_url, config.schema_path), deadline)
    db.configure(config.database_url)

    worker = build_worker(config, connection)
    config.name_file.write_text(worker.name)
    # The scheduler process moves retries whose back-off has elapsed back onto the queue.
    worker.work(burst=burst, with_scheduler=True, logging_level=config.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
