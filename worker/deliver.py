"""`python -m worker.deliver`: the worker of the webhook deliveries
(worker/deliveries.py), on the queue `webhooks`, with its own scheduler for
the retries.

A worker of its own, not the store workers': a try waits for a receiver up to
WEBHOOK_TIMEOUT, and a dead receiver must not hold the storage of answers.
It reads the same settings as `python -m worker`, the same survey files
(their webhooks) and connects as the same database role, which reads only
the one row it sends (db/schema.sql's stored_answer()).  `--burst` runs what
is waiting and ends."""

import logging
import sys
import time

from rq import Queue
from rq.serializers import JSONSerializer

import redisbounds
import survey

from . import db, deliveries, logs, metrics
from .__main__ import work
from .config import Config
from .survey_worker import SurveyWorker
from .wait import wait_for

log = logging.getLogger("worker.deliver")


def build_worker(config, connection):
    return SurveyWorker([Queue(deliveries.QUEUE, connection=connection, serializer=JSONSerializer)],
                        connection=connection, serializer=JSONSerializer,
                        maintenance_interval=config.maintenance_interval, worker_ttl=config.worker_ttl,
                        exception_handlers=[metrics.count_failure])


def main(argv=None):
    config = Config.from_env()
    logs.setup(config.log_format, config.log_level, config.log_key)
    try:
        surveys = config.surveys()
    except survey.SurveyFileError as exc:
        sys.exit(f"survey: {exc}")
    deliveries.configure(surveys)
    burst = "--burst" in (argv if argv is not None else sys.argv[1:])
    connection = redisbounds.connect(config.redis_url)
    wait_for("redis", connection.ping, time.monotonic() + 300)
    # The owner restarted: a URL that answered 410 may be fixed now.
    deliveries.clear_gone(connection)
    db.configure(config.database_url, config.db_timeout)
    if config.deliver_metrics_port:
        metrics.watch_deliveries(connection, deliveries.QUEUE)
        metrics.serve(config.metrics_host, config.deliver_metrics_port)
    hooks = sum(len(s.webhooks) for s in surveys)
    log.info("delivering to %d webhook%s of %d survey%s", hooks, "" if hooks == 1 else "s",
             len(surveys), "" if len(surveys) == 1 else "s")
    # The store worker's loop: a fresh one each time a Redis outage ends it.
    return work(config, connection, burst, build=build_worker, name_file=config.deliver_name_file)


if __name__ == "__main__":
    sys.exit(main())
