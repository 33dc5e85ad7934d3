"""The worker's metrics, served by the worker itself on WORKER_METRICS_PORT.

Why its own endpoint rather than numbers computed by the web at scrape time:
the web can read RQ's registries and the table, but those are snapshots that
expire (finished jobs after JOB_RESULT_TTL) and don't record retries at all.
Counting in the process that runs the jobs gives true counters, and this is
prometheus-client's own, documented way for a long-running process
(start_http_server); it needs no exporter to deploy or keep in step.  The
worker is one process (a SimpleWorker runs jobs in-process), so the plain
single-process registry is right; more workers are more scrape targets.
"""

import logging

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics, start_http_server
from rq import Queue
from rq.serializers import JSONSerializer
from rq.utils import now

log = logging.getLogger(__name__)

# The *_created series only repeat the process's start time on every line.
disable_created_metrics()

JOBS = Counter(
    "survey_worker_jobs", "Jobs this worker ran, by outcome: stored, already_stored (a repeat "
    "delivery), erase, retried (failed, will run again) or failed (out of retries, in the failed registry).",
    ["outcome"],
)
STORED = Counter(
    "survey_worker_answers_stored", "Answers this worker stored (a repeat delivery not counted), by survey.",
    ["survey"],
)
SUBMITTED_TO_STORED = Histogram(
    "survey_worker_submitted_to_stored_seconds",
    "From the web accepting a submission to its row being stored (stored_at - submitted_at).",
    # A row normally lands within a second; retries during an outage take up to 30 minutes.
    buckets=(.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 1800, 3600),
)

ERASED = Counter(
    "survey_worker_erased", "Stored answers this worker erased (a tombstone kept), by why: "
    "request (the respondent's or the auditor's) or retention (older than RETENTION_DAYS).",
    ["reason"],
)

DELIVERIES = Counter(
    "survey_worker_webhook_deliveries", "Webhook delivery tries, by survey, event and outcome: delivered (a 2xx), "
    "retried (will try again), failed (out of tries, in the failed registry), gone (the URL answered 410), "
    "refused (a private address), erased (the answer was erased first: not sent) or dropped (no such webhook now).",
    ["survey", "event", "outcome"],
)
DELIVERY_LATENCY = Histogram(
    "survey_worker_webhook_delivery_seconds", "From an answer's stored_at to its answer.stored delivered.",
    buckets=(.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 7200, 86400),
)

OLDEST_DELIVERY = Gauge(
    "survey_worker_webhook_oldest_waiting_seconds",
    "Age of the oldest webhook delivery still waiting (queued, or scheduled for a retry), read from Redis at scrape.")


def watch_deliveries(connection, queue_name):
    """OLDEST_DELIVERY, from the delivery queue's head and its scheduled retries."""
    queue = Queue(queue_name, connection=connection, serializer=JSONSerializer)

    def oldest():
        try:
            ids = queue.get_job_ids(0, 0) + queue.scheduled_job_registry.get_job_ids(0, 99)
            created = [job.created_at for job in queue.job_class.fetch_many(ids, connection, JSONSerializer) if job]
        except Exception:  # noqa: BLE001 - Redis away: no figure rather than a failed scrape
            return float("nan")
        return max((now() - c).total_seconds() for c in created) if created else 0.0
    OLDEST_DELIVERY.set_function(oldest)


for reason in ("request", "retention"):
    ERASED.labels(reason=reason)
for outcome in ("stored", "already_stored", "erase", "retried", "failed"):
    JOBS.labels(outcome=outcome)  # present from the start, at 0


def count_failure(job, exc_type, exc_value, traceback):
    """An RQ exception handler: runs before RQ decides between retry and the failed registry."""
    JOBS.labels(outcome="retried" if job.should_retry else "failed").inc()
    return True  # let RQ's default handling go on


def serve(host, port):
    """Serve /metrics on a thread; a busy port costs the metrics, not the jobs."""
    try:
        start_http_server(port, addr=host)
    except OSError as exc:
        log.error("worker metrics not served on %s:%s: %s", host, port, exc)
        return False
    log.info("worker metrics on http://%s:%s/metrics", host, port)
    return True
