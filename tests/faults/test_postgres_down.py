"""PostgreSQL down: the web keeps accepting, the queue buffers, jobs retry with
back-off, and every submission is stored once when the database returns.
Jobs that run out of retries wait in the failed registry for `rq requeue`."""

import subprocess
import sys

import pytest

from tests.faults.conftest import SURVEYS, failed, postgres_down, queue
from tests.servers import wait_until


@pytest.mark.parametrize("survey", SURVEYS, indirect=True)
def test_submissions_during_an_outage_are_stored_once_it_ends(
        pg_server, start_worker, post_form, fresh_form, redis, stored_ids):
    worker = start_worker()
    before = [fresh_form() for _ in range(3)]
    for hidden in before:
        assert post_form(hidden).status_code == 303
    wait_until(lambda: len(stored_ids()) == 3, 30, "the first rows")

    during = [fresh_form() for _ in range(15)]
    with postgres_down(pg_server):
        for hidden in during:
            # The web does not need the database to accept a submission.
            assert post_form(hidden).status_code == 303
        # The worker tries, fails, and schedules retries: nothing is lost or failed for good.
        wait_until(lambda: "OperationalError" in worker.log(), 30, "the worker to hit the outage")
        wait_until(lambda: queue(redis).scheduled_job_registry.count > 0, 30, "a retry to be scheduled")
        assert failed(redis).count == 0
        assert worker.alive()

    expected = sorted(h["submission_id"] for h in before + during)
    wait_until(lambda: len(stored_ids()) >= len(expected), 60, "every row after the outage", interval=0.2)
    assert sorted(stored_ids()) == expected  # each exactly once
    assert failed(redis).count == 0
    assert worker.alive()


def test_exhausted_retries_wait_in_the_failed_registry_until_requeued(
        pg_server, start_worker, post_form, fresh_form, redis, stored_ids, env, app):
    app.extensions["submission_queue"].retry.max = 1  # one retry, then give up
    worker = start_worker()
    forms = [fresh_form() for _ in range(3)]
    with postgres_down(pg_server):
        for hidden in forms:
            assert post_form(hidden).status_code == 303
        wait_until(lambda: failed(redis).count == 3, 60, "the jobs to exhaust their retries", interval=0.2)
        for job in failed(redis).get_job_ids():
            result = queue(redis).fetch_job(job).latest_result()
            # A clear reason: which error, and that it was the database connection.
            assert "psycopg2.OperationalError" in result.exc_string
            assert "Connection refused" in result.exc_string or "connection" in result.exc_string
    assert stored_ids() == []

    # The operator's command from docs/reliability.md's fault table.
    cli = subprocess.run(
        [f"{sys.prefix}/bin/rq", "requeue", "--all", "--queue", "submissions", "-S", "json", "-u", env["REDIS_URL"]],
        capture_output=True, text=True, timeout=60)
    assert cli.returncode == 0, cli.stderr
    assert "Requeueing 3 jobs" in cli.stdout
    wait_until(lambda: len(stored_ids()) == 3, 30, "the requeued jobs to be stored")
    assert sorted(stored_ids()) == sorted(h["submission_id"] for h in forms)
    assert failed(redis).count == 0
    assert worker.alive()
