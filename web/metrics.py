"""/metrics in Prometheus text format: the web's counters and the queue's state.

Under gunicorn every worker process counts in its own files in
PROMETHEUS_MULTIPROC_DIR (set by web/gunicorn.conf.py) and a scrape, served by
any one worker, adds them all up.  The queue's state is not counted here but
read from Redis at scrape time, so it is right whoever changed it (a worker,
or an operator with `rq requeue`).

The worker's own numbers (jobs stored, retried, failed, time from submission
to row) are on the worker's endpoint, WORKER_METRICS_PORT: see worker/metrics.py.
"""

import os
import socket
import time

import redis
from flask import Blueprint, Response, abort, current_app, g, has_request_context, request
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector
from rq import Worker
from werkzeug.exceptions import NotFound

bp = Blueprint("metrics", __name__)

# The web's own metrics live in their own registry, not the global one, so a
# process that also imports other instrumented code exports only these.
REGISTRY = CollectorRegistry(auto_describe=True)

ACCEPTED = Counter(
    "survey_submissions_accepted",
    "Valid submissions, by survey and whether this post queued the job or found it already queued.",
    ["enqueue", "survey"], registry=REGISTRY,
)
REJECTED = Counter(
    "survey_submissions_rejected",
    "Rejected posts, by survey, form field and reason (one post can count for several fields).",
    ["field", "reason", "survey"], registry=REGISTRY,
)
ENQUEUE_FAILURES = Counter(
    "survey_enqueue_failures", "Valid submissions that could not be queued (Redis errors), by error class.",
    ["error"], registry=REGISTRY,
)
ENQUEUE_SECONDS = Histogram(
    "survey_enqueue_seconds", "Time to put one submission on the queue, failures included.",
    buckets=(.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5),
    registry=REGISTRY,
)

# What a visit costs, request by request: the app's CPU (its thread's, so a
# wait on Redis or PostgreSQL counts nothing) by route.  What gunicorn spends
# around the app (parsing, the access log) is its process's CPU less these.
ROUTES = {"survey.form": "form", "survey.submit": "post", "survey.receipt": "receipt",
          "survey.receipt_json": "status"}
REQUEST_CPU = Counter(
    "survey_web_request_cpu_seconds",
    "CPU the app spent on requests, by route (form, post, receipt, status, other).",
    ["route"], registry=REGISTRY,
)
REQUESTS = Counter("survey_web_requests", "Requests the app answered, by route.", ["route"], registry=REGISTRY)


# Flask-WTF's CSRF messages, by reason; the rest count as "invalid".
CSRF_REASONS = {
    "The CSRF token is missing.": "missing",
    "The CSRF session token is missing.": "no_session",
    "The CSRF token has expired.": "expired",
    # Over HTTPS the post must also come from one of our own pages.
    "The referrer header is missing.": "no_referrer",
    "The referrer does not match the host.": "bad_referrer",
}


def csrf_reason(description):
    return CSRF_REASONS.get(description, "invalid")


def survey_label():
    """The slug of the survey this request is for (web/views.py's current_survey)."""
    survey = g.get("survey") if has_request_context() else None
    return (survey or current_app.config["SURVEY"]).slug


def count_rejections(rejections):
    survey = survey_label()
    for field, reason in rejections:
        REJECTED.labels(field=field, reason=reason, survey=survey).inc()


class QueueCollector:
    """The RQ queue as gauges, read from Redis at each scrape."""

    def __init__(self, submission_queue):
        self.queue = submission_queue.queue

    def collect(self):
        up = GaugeMetricFamily("survey_queue_up", "1 if Redis answered this scrape, else 0.")
        try:
            # No registry cleanup here: a scrape only reads.
            gauges = [
                ("survey_queue_depth", "Jobs waiting in the queue.", self.queue.count),
                ("survey_queue_failed_jobs", "Jobs in the failed registry (out of retries).",
                 self.queue.failed_job_registry.get_job_count(cleanup=False)),
                ("survey_queue_scheduled_jobs", "Jobs waiting for a retry's back-off to end.",
                 self.queue.scheduled_job_registry.get_job_count(cleanup=False)),
                ("survey_queue_started_jobs", "Jobs a worker is running.",
                 self.queue.started_job_registry.get_job_count(cleanup=False)),
                ("survey_queue_workers", "Workers listening on the queue.",
                 Worker.count(connection=self.queue.connection, queue=self.queue)),
            ]
        except redis.RedisError:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        labels = ["queue"]
        for name, documentation, value in gauges:
            family = GaugeMetricFamily(name, documentation, labels=labels)
            family.add_metric([self.queue.name], value)
            yield family


def scrape_registry(app):
    """The registry one scrape reads: every process's counters, and the queue."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)
    else:
        registry.register(REGISTRY)
    registry.register(QueueCollector(app.extensions["submission_queue"]))
    return registry


def listener_port(environ):
    """The port of the listener this request came in on, "" for a unix
    socket.  Under gunicorn, from the connection's own socket: neither a
    Host nor an X-Forwarded-Host that a visitor chose can change it.
    Elsewhere (tests, a development server) from SERVER_PORT as the server
    set it, before ProxyFix rewrote it."""
    sock = environ.get("gunicorn.socket")
    if sock is not None:
        return str(sock.getsockname()[1]) if sock.family in (socket.AF_INET, socket.AF_INET6) else ""
    return environ.get("werkzeug.proxy_fix.orig", environ)["SERVER_PORT"]


class MetricsListener:
    """WEB_METRICS_PORT answers /metrics and nothing else, so whoever can
    reach it (Prometheus, and whoever else shares its network) meets no
    form, no sign-in and no proxy headers there."""

    def __init__(self, app, port):
        self.app = app
        self.port = str(port)

    def __call__(self, environ, start_response):
        if listener_port(environ) == self.port and environ.get("PATH_INFO") != "/metrics":
            return NotFound()(environ, start_response)
        return self.app(environ, start_response)


class RouteClock:
    """Counts each request's CPU under its route (REQUEST_CPU), from the
    first of the app's code to its answer (a page is whole by then; a
    streamed export's later chunks are not counted)."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        started = time.thread_time()
        try:
            return self.app(environ, start_response)
        finally:
            route = environ.get("survey.route", "other")
            REQUEST_CPU.labels(route=route).inc(time.thread_time() - started)
            REQUESTS.labels(route=route).inc()


def name_route():
    request.environ["survey.route"] = ROUTES.get(request.endpoint, "other")


@bp.get("/metrics")
def metrics():
    # Only on the operator's listener, which the proxy never forwards to.
    if listener_port(request.environ) != str(current_app.config["WEB_METRICS_PORT"]):
        abort(404)
    return Response(generate_latest(scrape_registry(current_app)), content_type=CONTENT_TYPE_LATEST)


def init_app(app):
    app.register_blueprint(bp)
    # First of the app's before-request functions: one that answers early still has its route.
    app.before_request_funcs.setdefault(None, []).insert(0, name_route)
    app.wsgi_app = RouteClock(app.wsgi_app)
    # Outermost, so nothing else of the app runs for a request it turns away.
    app.wsgi_app = MetricsListener(app.wsgi_app, app.config["WEB_METRICS_PORT"])
