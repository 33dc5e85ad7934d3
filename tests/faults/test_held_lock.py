"""A DBA's LOCK TABLE (or a long migration) holds `cats` longer than a job may
run: the worker's statements give up on the server's lock_timeout, so no job
stays STARTED past JOB_TIMEOUT (where RQ's SIGALRM cannot reach into libpq,
and RQ's maintenance would hand the job to another worker while this one
still held it); the jobs wait for their retry, and once the lock is gone
every answer is stored exactly once, none failed, each counted once."""

import time
import urllib.request

import psycopg2

from tests.faults.conftest import failed, queue
from tests.scrape import samples, value
from tests.servers import free_port, wait_until

JOB_TIMEOUT = 6
WORKER_DB_TIMEOUT = 2
HELD_S = 2.5 * JOB_TIMEOUT
ANSWERS = 20


def started_spans(redis, seconds):
    """{job id: longest unbroken time seen in RQ's StartedJobRegistry}, sampled for `seconds`."""
    registry = queue(redis).started_job_registry
    since, longest = {}, {}
    end = time.monotonic() + seconds
    while (now := time.monotonic()) < end:
        ids = set(registry.get_job_ids())
        for job_id in ids:
            since.setdefault(job_id, now)
            longest[job_id] = max(longest.get(job_id, 0), now - since[job_id])
        for job_id in set(since) - ids:
            del since[job_id]
        time.sleep(0.1)
    return longest


def test_a_held_table_lock_keeps_no_job_started_past_job_timeout(
        env, app, start_worker, post_form, fresh_form, redis, stored_ids):
    app.extensions["submission_queue"].job_options["timeout"] = JOB_TIMEOUT
    port = free_port()
    worker = start_worker(WORKER_DB_TIMEOUT=str(WORKER_DB_TIMEOUT), WORKER_METRICS_PORT=str(port))

    def worker_metrics():
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            return samples(response.read().decode())

    dba = psycopg2.connect(env["DATABASE_URL"])
    try:
        with dba.cursor() as cur:
            cur.execute("LOCK TABLE cats IN ACCESS EXCLUSIVE MODE")
        forms = [fresh_form() for _ in range(ANSWERS)]
        for hidden in forms:
            assert post_form(hidden).status_code == 303
        spans = started_spans(redis, HELD_S)
        assert spans, "no job was ever started while the table was locked"
        assert max(spans.values()) < JOB_TIMEOUT, spans
        # The lock did hold them: they failed on it and wait for a retry.
        assert value(worker_metrics(), "survey_worker_jobs_total", outcome="retried") > 0
        assert "due to statement timeout" in worker.log() or "due to lock timeout" in worker.log()
    finally:
        dba.rollback()
        dba.close()

    expected = sorted(h["submission_id"] for h in forms)
    wait_until(lambda: len(stored_ids()) >= ANSWERS, 60, "every answer after the lock", interval=0.2)
    time.sleep(1)  # a doubled store would land now
    assert sorted(stored_ids()) == expected  # each exactly once
    assert failed(redis).count == 0
    metrics = worker_metrics()
    assert value(metrics, "survey_worker_jobs_total", outcome="stored") == ANSWERS
    assert value(metrics, "survey_worker_jobs_total", outcome="already_stored") == 0
    assert value(metrics, "survey_worker_jobs_total", outcome="failed") == 0
    assert worker.alive()
