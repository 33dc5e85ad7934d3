"""/metrics in one process: counters move with submissions, the queue is read
from Redis, and the worker counts what its jobs did."""

import uuid

import prometheus_client
import pytest
from rq import Queue, Retry
from rq.serializers import JSONSerializer

from tests.scrape import samples, value
from submission import STORE_JOB
from worker.__main__ import build_worker
from worker.config import Config as WorkerConfig


def scrape(client):
    # As on gunicorn's second listener, the only one /metrics answers on.
    port = str(client.application.config["WEB_METRICS_PORT"])
    response = client.get("/metrics", environ_overrides={"SERVER_PORT": port})
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain; version=")
    return samples(response.get_data(as_text=True))


ACCEPTED = "survey_submissions_accepted_total"
REJECTED = "survey_submissions_rejected_total"


def test_accepted_counts_new_and_duplicate_posts(client, post_form, fresh_form):
    before = scrape(client)
    hidden = fresh_form()
    assert post_form(hidden).status_code == 303
    assert post_form(hidden).status_code == 303  # the double click
    after = scrape(client)
    assert value(after, ACCEPTED, enqueue="queued") == value(before, ACCEPTED, enqueue="queued") + 1
    assert value(after, ACCEPTED, enqueue="duplicate") == value(before, ACCEPTED, enqueue="duplicate") + 1
    assert value(after, "survey_enqueue_seconds_count") == value(before, "survey_enqueue_seconds_count") + 2


def test_rejections_count_by_field_and_reason(client, post_form):
    cases = [
        ({"name": "   "}, ("name", "missing")),
        ({"name": "x" * 51}, ("name", "too_long")),
        ({"name": "Tab\there"}, ("name", "control_chars")),
        ({"coat": None}, ("coat", "missing")),
        ({"donut": "<script>"}, ("donut", "not_a_choice")),
        ({"submission_id": "not-a-uuid"}, ("submission_id", "invalid")),
        ({"csrf_token": None}, ("csrf_token", "missing")),
    ]
    for fields, (field, reason) in cases:
        before = value(scrape(client), REJECTED, field=field, reason=reason)
        assert post_form(**fields).status_code in (400, 422)
        after = scrape(client)
        assert value(after, REJECTED, field=field, reason=reason) == before + 1, (fields, field, reason)
    # What the client sent never becomes a label: only known reasons appear.
    reasons = {dict(labels)["reason"] for (name, labels) in scrape(client) if name == REJECTED}
    assert reasons <= {"missing", "too_long", "control_chars", "not_a_choice", "invalid", "expired",
                       "no_session", "no_referrer", "bad_referrer", "too_large", "queue_full", "rate_limited",
                       "honeypot", "too_fast", "replayed", "closed", "not_open", "erased",
                       # The other question types' (survey/questions/).
                       "too_few", "too_many", "out_of_range", "not_a_number", "not_whole", "not_an_email",
                       "not_a_date"}


def test_each_route_counts_its_requests_and_cpu(client, post_form, fresh_form):
    cpu, requests = "survey_web_request_cpu_seconds_total", "survey_web_requests_total"
    before = scrape(client)
    hidden = fresh_form()  # the form
    receipt = post_form(hidden).headers["Location"]  # the post
    assert client.get(receipt).status_code == 200  # the receipt
    assert client.get(receipt + ".json").status_code == 200  # its poll
    assert client.get("/healthz").status_code == 200
    after = scrape(client)
    for route in ("form", "post", "receipt", "status"):
        assert value(after, requests, route=route) == value(before, requests, route=route) + 1, route
        assert value(after, cpu, route=route) > value(before, cpu, route=route), route
    # The health check and the first scrape are neither; the second scrape is still running.
    assert value(after, requests, route="other") == value(before, requests, route="other") + 2


def test_too_large_post_counts(client):
    before = value(scrape(client), REJECTED, field="form", reason="too_large")
    assert client.post("/", data={"name": "x" * 20000}).status_code == 413
    assert value(scrape(client), REJECTED, field="form", reason="too_large") == before + 1


def test_queue_gauges_follow_redis(client, post_form, redis, run_worker):
    post_form()
    post_form()
    now = scrape(client)
    assert value(now, "survey_queue_up") == 1
    assert value(now, "survey_queue_depth", queue="submissions") == 2
    assert value(now, "survey_queue_failed_jobs", queue="submissions") == 0

    # A job that can only fail (no such function) lands in the failed registry.
    Queue("submissions", connection=redis, serializer=JSONSerializer).enqueue_call("worker.jobs.no_such_job")
    run_worker()
    now = scrape(client)
    assert value(now, "survey_queue_depth", queue="submissions") == 0
    assert value(now, "survey_queue_failed_jobs", queue="submissions") == 1


def test_enqueue_failure_counts_and_queue_reads_down(client, post_form, fresh_form, redis_server):
    before = scrape(client)
    hidden = fresh_form()
    redis_server.stop()
    try:
        assert post_form(hidden).status_code == 503
        during = scrape(client)  # /metrics itself still answers
    finally:
        redis_server.start()
    failures = sum(v for (name, _), v in during.items() if name == "survey_enqueue_failures_total")
    failures_before = sum(v for (name, _), v in before.items() if name == "survey_enqueue_failures_total")
    assert failures == failures_before + 1
    assert value(during, "survey_queue_up") == 0
    assert value(during, ACCEPTED, enqueue="queued") == value(before, ACCEPTED, enqueue="queued")


def worker_count(outcome):
    return prometheus_client.REGISTRY.get_sample_value("survey_worker_jobs_total", {"outcome": outcome}) or 0.0


def test_worker_counts_stored_retried_and_failed(env, redis, post_form, run_worker):
    stored, retried, failed = worker_count("stored"), worker_count("retried"), worker_count("failed")
    latency = prometheus_client.REGISTRY.get_sample_value("survey_worker_submitted_to_stored_seconds_count") or 0
    post_form()
    run_worker()
    assert worker_count("stored") == stored + 1
    assert prometheus_client.REGISTRY.get_sample_value("survey_worker_submitted_to_stored_seconds_count") == latency + 1

    # A submission the database refuses (a coat longer than the table allows):
    # no retry (it could never succeed), straight to the failed registry.  The
    # real worker, with its handlers.  (Retries are counted in
    # tests/test_batch_worker.py, with the database away.)
    bad = {"id": str(uuid.uuid4()), "name": "Rex", "coat": "x" * 40, "donut": "glazed",
           "submitted_at": "2026-01-01T00:00:00+00:00"}
    queue = Queue("submissions", connection=redis, serializer=JSONSerializer)
    queue.enqueue_call(STORE_JOB, kwargs={"submission": bad}, job_id=bad["id"], retry=Retry(max=1))
    build_worker(WorkerConfig.from_env(env), redis).work(burst=True, with_scheduler=False)
    assert worker_count("retried") == retried
    assert worker_count("failed") == failed + 1
    assert queue.failed_job_registry.get_job_ids() == [bad["id"]]


def test_metrics_only_on_the_metrics_listener(client):
    port = client.application.config["WEB_METRICS_PORT"]
    assert client.get("/metrics").status_code == 404  # the visitors' listener
    assert client.get("/metrics", environ_overrides={"SERVER_PORT": str(port + 1)}).status_code == 404
    # A Host through the proxy naming the metrics port changes nothing: the listener counts.
    spoofed = client.get("/metrics", headers={"X-Forwarded-Host": f"survey.example:{port}"})
    assert spoofed.status_code == 404
    assert client.get("/metrics", environ_overrides={"SERVER_PORT": str(port)}).status_code == 200


@pytest.mark.parametrize("path", ["/", "/results.csv", "/results", "/healthz", "/submissions/x", "//metrics",
                                  "/metrics/", "/static/style.css"])
def test_the_metrics_listener_answers_nothing_but_metrics(client, path):
    on_metrics = {"SERVER_PORT": str(client.application.config["WEB_METRICS_PORT"])}
    assert client.get(path, environ_overrides=on_metrics, auth=("auditor", "x")).status_code == 404
    assert client.post(path, environ_overrides=on_metrics, data={"name": "x"}).status_code == 404
