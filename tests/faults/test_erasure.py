"""Erasure against the real worker process: an erase queued behind its
store while the worker is paused, and a worker SIGKILLed mid-erase.  Nothing
lost, doubled, or brought back (the accounted fixture)."""

import signal
import time

import psycopg2
from rq.job import JobStatus

from tests.conftest import hidden_fields
from tests.faults.conftest import queue
from tests.servers import wait_until

JOB_TIMEOUT = 10  # the abandoned erase is recovered JOB_TIMEOUT + 60 s after it started


def erase_from_receipt(client, sid):
    html = client.get(f"/submissions/{sid}").get_data(as_text=True)
    return client.post(f"/submissions/{sid}/erase", data={"csrf_token": hidden_fields(html)["csrf_token"]})


def finished(redis, job_id):
    job = queue(redis).fetch_job(job_id)
    return job is not None and job.get_status() == JobStatus.FINISHED


def test_an_erase_racing_its_queued_store_while_the_worker_is_paused(
        app, client, start_worker, post_form, fresh_form, redis, accounted):
    worker = start_worker()
    worker.signal(signal.SIGSTOP)
    try:
        erased, kept = fresh_form(), fresh_form()
        assert post_form(erased).status_code == 303 and post_form(kept).status_code == 303
        sid = erased["submission_id"]
        html = client.get(f"/submissions/{sid}").get_data(as_text=True)
        for _ in range(2):  # a double click
            assert client.post(f"/submissions/{sid}/erase", data=hidden_fields(html)).status_code == 303
        # Both stores and one erase, all waiting (the paused worker's blocking
        # dequeue may have moved the first onto RQ's intermediate list).
        assert app.extensions["submission_queue"].depth() == 3
    finally:
        worker.signal(signal.SIGCONT)
    wait_until(lambda: finished(redis, f"erase-{erased['submission_id']}"), 30, "the erase")
    wait_until(lambda: finished(redis, kept["submission_id"]), 30, "the other store")
    accounted([erased["submission_id"], kept["submission_id"]], erased=[erased["submission_id"]])
    assert client.get(f"/submissions/{erased['submission_id']}.json").get_json()["state"] == "erased"

    # The store job delivered again later brings nothing back.
    queue(redis).enqueue_job(queue(redis).fetch_job(erased["submission_id"]))
    wait_until(lambda: worker.log().count("already stored") >= 1, 30, "the re-delivered store")
    accounted([erased["submission_id"], kept["submission_id"]], erased=[erased["submission_id"]])


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
