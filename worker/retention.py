"""`python -m worker.retention`: erase old answers on a schedule, with RQ's
own cron scheduler (rq.cron, new in rq 3.0).

Every RETENTION_INTERVAL seconds (and once at start) it enqueues one
worker.erasure.erase_expired job, which a worker runs like any other: it erases,
with tombstones, every answer stored more than RETENTION_DAYS days ago.
Without RETENTION_DAYS it enqueues nothing and keeps every answer, but stays
up, so a process manager that ends everything when one process exits (make
run) does not stop the pipeline for it.  One is enough; a second only repeats
a job that finds nothing left to erase.  When Redis stops answering (down,
frozen, partitioned: every wait is bounded, redisbounds/) it says so, waits
for Redis to answer again, and carries on.
"""

import logging
import socket
import sys
import time
from datetime import datetime, timezone

import redis
from rq import Queue
from rq import cron_job_registry
from rq.cron import CronJob, CronScheduler
from rq.defaults import DEFAULT_CRON_JOB_HISTORY_LIMIT, DEFAULT_CRON_JOB_HISTORY_TTL
from rq.exceptions import StopRequested
from rq.serializers import JSONSerializer

import redisbounds

from . import erasure, logs
from .config import Config
from .wait import wait_for

log = logging.getLogger("worker.retention")
# One name per host (pod, container), so `--check` there finds its own.
NAME = f"survey-retention-{socket.gethostname()}"
# The scheduler beats at least once a minute (rq.cron sleeps 60 s at most).
HEARTBEAT_MAX_AGE_S = 150


class JSONCronJob(CronJob):
    """rq 3.0's CronJob.enqueue, with the JSON serializer our worker reads:
    RQ's own enqueues with pickle, which the worker refuses to load (and
    should).  Check it again before moving to another RQ version."""

    def enqueue(self, connection):
        queue = Queue(self.queue_name, connection=connection, serializer=JSONSerializer)
        with connection.pipeline() as pipeline:
            job = queue.enqueue(self.func, args=self.args, kwargs=self.kwargs, **self.job_options, pipeline=pipeline)
            pipeline.zadd(self.job_history_key, {job.id: job.enqueued_at.timestamp()})
            pipeline.zremrangebyrank(self.job_history_key, 0, -(DEFAULT_CRON_JOB_HISTORY_LIMIT + 1))
            pipeline.expire(self.job_history_key, DEFAULT_CRON_JOB_HISTORY_TTL)
            cron_job_registry.add(self.name, pipeline, enqueue_timestamp=job.enqueued_at.timestamp())
            pipeline.execute()
        log.info("enqueued %s (answers older than %s days)", job.id, self.kwargs["days"])
        return job


def scheduler(config, connection):
    cron = CronScheduler(connection=connection, logging_level=config.log_level, name=NAME)
    if config.retention_days is None:
        log.info("RETENTION_DAYS is not set: every answer is kept")
    else:
        # register() would build RQ's pickling CronJob; ours goes in its place.
        cron._cron_jobs.append(JSONCronJob(
            queue_name=config.queue_name, func=erasure.erase_expired, kwargs={"days": config.retention_days},
            interval=config.retention_interval, job_timeout=config.retention_interval))
        log.info("answers older than %s days are erased every %s s", config.retention_days, config.retention_interval)
    return cron


def check(connection):
    """`--check`, the container's probe: this host's scheduler beat recently."""
    try:
        beat = CronScheduler.fetch(NAME, connection).last_heartbeat
    except Exception as exc:  # noqa: BLE001 - not registered, or Redis away: unhealthy either way
        print(f"{NAME}: {exc}")
        return 1
    age = (datetime.now(timezone.utc) - beat.replace(tzinfo=timezone.utc)).total_seconds() if beat else None
    if age is None or age > HEARTBEAT_MAX_AGE_S:
        print(f"{NAME}: no heartbeat for {age}s")
        return 1
    return 0


def run(config, connection):
    """The cron scheduler's loop, again each time Redis is lost, until a stop request."""
    while True:
        try:
            scheduler(config, connection).start()  # returns on SIGTERM or SIGINT
            return 0
        except redis.RedisError as exc:
            log.error("retention scheduler lost Redis: %s; waiting for it", exc)
        try:
            wait_for("redis", connection.ping)
        except StopRequested:  # the scheduler's SIGTERM handler, while we wait
            return 0


def main(argv=None):
    config = Config.from_env()
    logs.setup(config.log_format, config.log_level, config.log_key)
    connection = redisbounds.connect(config.redis_url)
    if "--check" in (argv or sys.argv[1:]):
        return check(connection)
    wait_for("redis", connection.ping, time.monotonic() + 300)
    return run(config, connection)


if __name__ == "__main__":
    sys.exit(main())
