"""Duplicates: the same submission posted many times at once, the same job
enqueued twice, a finished job delivered again: one row each time; and once
erased, delivered again: no row."""

from concurrent.futures import ThreadPoolExecutor

import pytest
from rq.job import JobStatus

from tests.faults.conftest import SURVEYS, queue
from tests.servers import wait_until


@pytest.mark.parametrize("survey", SURVEYS, indirect=True)
def test_same_form_posted_many_times_at_once_is_one_job_and_one_row(
        survey, start_web, start_worker, redis, stored_ids):
    _, browser = start_web()
    data = {**browser.form(survey.path), **survey.form("Echo")}
    with ThreadPoolExecutor(10) as pool:
        statuses = list(pool.map(lambda _: browser.request(survey.path, data)[0], range(20)))
    # Every click lands on the receipt; unique=True let exactly one of them queue a job.
    assert statuses == [303] * 20
    assert queue(redis).count == 1
    start_worker()
    wait_until(lambda: stored_ids() == [data["submission_id"]], 30, "the row")
    # RQ marks the job finished after the COMMIT (and the deliveries' enqueue): a moment later.
    wait_until(lambda: queue(redis).fetch_job(data["submission_id"]).get_status() == JobStatus.FINISHED, 30,
               "the job finished")
    assert stored_ids() == [data["submission_id"]]


@pytest.mark.parametrize("survey", SURVEYS, indirect=True)
def test_same_job_enqueued_twice_or_delivered_again_stores_one_row(
        app, survey, start_worker, redis, stored_ids, accounted):
    submissions = app.extensions["submission_queue"]
    item = survey.payload(name="Twice")
    assert submissions.enqueue(item) is True
    assert submissions.enqueue(item) is False  # the job is already queued
    worker = start_worker()
    wait_until(lambda: queue(redis).fetch_job(item["id"]).get_status() == JobStatus.FINISHED, 30, "the job")

    # At-least-once delivery: the finished job runs again (a retry after its
    # insert committed, as RQ does for a job whose worker died before it
    # could mark it finished).
    queue(redis).enqueue_job(queue(redis).fetch_job(item["id"]))
    wait_until(lambda: "already stored" in worker.log(), 30, "the second delivery")
    # And once its record has expired from Redis, the web may queue it afresh.
    redis.delete(f"rq:job:{item['id']}")
    assert submissions.enqueue(item) is True
    wait_until(lambda: worker.log().count("already stored") == 2, 30, "the third delivery")
    assert stored_ids() == [item["id"]]
    accounted([item["id"]])

    # Erased, then delivered once more: nothing brought back.
    assert submissions.enqueue_erase(item["id"]) is True
    wait_until(lambda: queue(redis).fetch_job(f"erase-{item['id']}").get_status() == JobStatus.FINISHED, 30, "the erase")
    redis.delete(f"rq:job:{item['id']}")
    assert submissions.enqueue(item) is True
    wait_until(lambda: worker.log().count("already stored") == 3, 30, "the delivery after the erase")
    accounted([item["id"]], erased=[item["id"]])
