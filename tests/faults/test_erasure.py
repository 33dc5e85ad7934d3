"""Erasure against the real worker process: an erase queued behind its
store while the worker is paused, or while the store waits for its retry,
and a worker SIGKILLed mid-erase.  Nothing lost, doubled, or brought back
(the accounted fixture), on the cat survey and, where parametrized, on the
second survey of tests/faults/conftest.py too."""

import signal
import time

import psycopg2
import pytest
from rq import Retry
from rq.job import JobStatus

from submission import logref
from tests.conftest import hidden_fields, store_job_gone, waiting
from tests.faults.conftest import SURVEYS, postgres_down, queue
from tests.servers import wait_until

JOB_TIMEOUT = 10  # the abandoned erase is recovered JOB_TIMEOUT + 60 s after it started


def erase_from_receipt(client, sid):
    html = client.get(f"/submissions/{sid}").get_data(as_text=True)
    return client.post(f"/submissions/{sid}/erase", data={"csrf_token": hidden_fields(html)["csrf_token"]})


def finished(redis, job_id):
    job = queue(redis).fetch_job(job_id)
    return job is not None and job.get_status() == JobStatus.FINISHED


@pytest.mark.parametrize("survey", SURVEYS, indirect=True)
def test_an_erase_racing_its_queued_store_while_the_worker_is_paused(
        app, client, start_worker, post_form, fresh_form, redis, accounted):
    worker = start_worker()
    worker.signal(signal.SIGSTOP)
    try:
        erased, kept = fresh_form(), fresh_form()
        assert post_form(erased, name="Erased Ernie").status_code == 303 and post_form(kept).status_code == 303
        sid = erased["submission_id"]
        html = client.get(f"/submissions/{sid}").get_data(as_text=True)
        for _ in range(2):  # a double click
            assert client.post(f"/submissions/{sid}/erase", data=hidden_fields(html)).status_code == 303
        # Both stores and one erase, all waiting (the paused worker's blocking
        # dequeue may have moved the first onto RQ's intermediate list).
        assert waiting(app) == 3
    finally:
        worker.signal(signal.SIGCONT)
    wait_until(lambda: finished(redis, f"erase-{erased['submission_id']}"), 30, "the erase")
    wait_until(lambda: finished(redis, kept["submission_id"]), 30, "the other store")
    accounted([erased["submission_id"], kept["submission_id"]], erased=[erased["submission_id"]])
    assert client.get(f"/submissions/{erased['submission_id']}.json").get_json()["state"] == "erased"

    # Its store job went with the erase; sent again, the form is refused at once.
    assert store_job_gone(redis, erased["submission_id"], "Erased Ernie")
    assert post_form(erased, name="Erased Ernie").status_code == 410
    assert store_job_gone(redis, erased["submission_id"], "Erased Ernie")
    accounted([erased["submission_id"], kept["submission_id"]], erased=[erased["submission_id"]])


@pytest.mark.parametrize("survey", SURVEYS, indirect=True)
def test_an_erase_while_the_store_waits_for_its_retry(
        app, client, pg_server, start_worker, post_form, fresh_form, redis, accounted):
    # One retry, long enough that the store is certain to be still waiting for it when the erase runs.
    app.extensions["submission_queue"].retry = Retry(max=3, interval=[20])
    worker = start_worker()
    hidden = fresh_form()
    sid = hidden["submission_id"]
    scheduled = queue(redis).scheduled_job_registry
    with postgres_down(pg_server):
        assert post_form(hidden, name="Retrying Roxanne").status_code == 303
        wait_until(lambda: sid in scheduled.get_job_ids(), 30, "the store's retry to be scheduled")
        assert "OperationalError" in worker.log()
    assert erase_from_receipt(client, sid).status_code == 303
    assert sid in scheduled.get_job_ids()  # queued while the store still waits
    wait_until(lambda: finished(redis, f"erase-{sid}"), 60, "the erase")
    accounted([sid], erased=[sid])
    assert sid not in scheduled.get_job_ids() and store_job_gone(redis, sid, "Retrying Roxanne")
    assert client.get(f"/submissions/{sid}.json").get_json()["state"] == "erased"


def test_a_worker_killed_mid_erase_leaves_the_erase_to_be_finished(
        app, env, client, start_worker, post_form, fresh_form, waiting_on_lock, redis, accounted):
    app.extensions["submission_queue"].job_options["timeout"] = JOB_TIMEOUT
    worker = start_worker()
    hidden = fresh_form()
    sid = hidden["submission_id"]
    assert post_form(hidden).status_code == 303
    wait_until(lambda: finished(redis, sid), 30, "the store")
    # The test holds the stored row, so the erase's DELETE waits inside
    # erase_submissions(), tombstone written but not committed; its worker dies there.
    holder = psycopg2.connect(env["DATABASE_URL"])
    try:
        with holder.cursor() as cur:
            cur.execute("SELECT 1 FROM cats WHERE submission_id = %s FOR UPDATE", (sid,))
        assert erase_from_receipt(client, sid).status_code == 303
        wait_until(lambda: waiting_on_lock(1), 30, "the worker to be inside the erase")
        worker.signal(signal.SIGKILL)
        assert worker.wait(10) == -signal.SIGKILL
    finally:
        holder.close()
    killed_at = time.monotonic()
    accounted([sid])  # the killed erase left nothing half done: the row, no tombstone

    start_worker()  # its maintenance recovers the abandoned erase, which runs again
    wait_until(lambda: finished(redis, f"erase-{sid}"), JOB_TIMEOUT + 60 + 30, "the abandoned erase", interval=0.5)
    print(f"abandoned erase finished {time.monotonic() - killed_at:.1f}s after the kill")
    accounted([sid], erased=[sid])


def test_an_erase_outlasts_a_database_outage_longer_than_its_retries(
        app, client, pg_server, start_worker, post_form, fresh_form, redis, accounted):
    """The retries (FAST: ten, about 20 s) run out while the database is
    still away: the erase keeps its place and is done when it comes back."""
    worker = start_worker()
    hidden = fresh_form()
    sid = hidden["submission_id"]
    assert post_form(hidden, name="Patient Pat").status_code == 303
    wait_until(lambda: finished(redis, sid), 30, "the store")
    erase_id = f"erase-{sid}"
    with postgres_down(pg_server):
        assert erase_from_receipt(client, sid).status_code == 303
        retries = len(app.config["JOB_RETRY_INTERVALS"])
        # The worker's log names the job by its reference (submission/logref.py).
        logged = f"job erase-{logref.ref(sid)}: exception raised"
        wait_until(lambda: worker.log().count(logged) > retries + 2, 120,
                   "the erase to fail more often than it has retries", interval=0.5)
        assert erase_id not in queue(redis).failed_job_registry.get_job_ids()
        assert client.get(f"/submissions/{sid}.json").get_json()["state"] == "erasing"
    wait_until(lambda: finished(redis, erase_id), 60, "the erase, once the database is back", interval=0.5)
    accounted([sid], erased=[sid])
    assert client.get(f"/submissions/{sid}.json").get_json()["state"] == "erased"
