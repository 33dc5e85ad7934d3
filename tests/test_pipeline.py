"""A valid submission travels form -> Redis -> worker -> PostgreSQL, once."""

import uuid

from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer

from submission import STORE_JOB


def queue(redis):
    return Queue("submissions", connection=redis, serializer=JSONSerializer)


def test_valid_submission_becomes_exactly_one_row(post_form, fresh_form, redis, run_worker, rows):
    hidden = fresh_form()
    response = post_form(hidden, name="  Pika  ")
    assert response.status_code == 303
    assert response.headers["Location"] == f"/submissions/{hidden['submission_id']}"

    jobs = queue(redis).jobs
    assert [job.id for job in jobs] == [hidden["submission_id"]]
    assert jobs[0].func_name == STORE_JOB
    # JSON on the wire, not pickle: the payload is readable by anything.
    assert jobs[0].kwargs["submission"]["answers"]["name"] == "Pika"

    assert rows() == []
    run_worker()
    stored = rows()
    assert len(stored) == 1
    row = stored[0]
    assert (row["name"], row["coat"], row["donut"]) == ("Pika", "tortie", "strawberry")
    assert row["submission_id"] == hidden["submission_id"]
    assert row["submitted_at"] <= row["stored_at"]


def test_same_submission_posted_twice_is_one_job_and_one_row(post_form, fresh_form, redis, run_worker, rows):
    hidden = fresh_form()
    assert post_form(hidden).status_code == 303
    assert post_form(hidden).status_code == 303  # a double click lands on the same receipt
    assert queue(redis).count == 1
    run_worker()
    assert len(rows()) == 1
    # Once more after the finished job has left Redis (its result_ttl ran
    # out): the post queues a second job for the same submission, and the
    # worker's INSERT ... ON CONFLICT DO NOTHING keeps it to one row.
    Job.fetch(hidden["submission_id"], connection=redis, serializer=JSONSerializer).delete()
    assert post_form(hidden).status_code == 303
    assert queue(redis).job_ids == [hidden["submission_id"]]
    run_worker()
    second = Job.fetch(hidden["submission_id"], connection=redis, serializer=JSONSerializer)
    assert second.get_status() == "finished" and second.return_value() == {"inserted": False}
    assert len(rows()) == 1


def test_job_delivered_twice_stores_one_row(env, run_worker, rows):
    from worker.jobs import store_submission

    submission = {"id": str(uuid.uuid4()), "name": "Tom", "coat": "grey", "donut": "maple",
                  "submitted_at": "2026-01-01T00:00:00+00:00"}
    assert store_submission(submission) == {"inserted": True}
    # What a retry after a commit (or a re-run abandoned job) does:
    assert store_submission(submission) == {"inserted": False}
    assert len(rows()) == 1


def test_receipt_shows_queued_then_stored(client, post_form, fresh_form, run_worker):
    hidden = fresh_form()
    post_form(hidden, name="Mochi")
    sid = hidden["submission_id"]

    page = client.get(f"/submissions/{sid}")
    assert page.status_code == 200
    assert 'data-state="queued"' in page.get_data(as_text=True)
    assert sid in page.get_data(as_text=True)
    assert client.get(f"/submissions/{sid}.json").get_json()["state"] == "queued"

    run_worker()

    page = client.get(f"/submissions/{sid}").get_data(as_text=True)
    assert 'data-state="stored"' in page
    assert "Mochi" in page
    status = client.get(f"/submissions/{sid}.json").get_json()
    assert status["state"] == "stored" and status["stored_at"]
    # The poll that finds it stored brings the stored receipt: receipt.js shows it without a reload.
    assert 'data-state="stored"' in status["html"] and "Mochi" in status["html"]


def test_a_waiting_answer_s_poll_asks_the_queue_alone(client, post_form, fresh_form, pg_server, caplog):
    hidden = fresh_form()
    assert post_form(hidden).status_code == 303
    pg_server.stop()
    try:
        status = client.get(f"/submissions/{hidden['submission_id']}.json").get_json()
        page = client.get(f"/submissions/{hidden['submission_id']}").get_data(as_text=True)
    finally:
        pg_server.start()
    assert status["state"] == "queued" and status["html"] is None
    assert 'data-state="queued"' in page
    # Neither tried the database (the queue's word was enough).
    assert "database unavailable" not in caplog.text


def test_receipt_for_unknown_submission_is_404(client):
    assert client.get(f"/submissions/{uuid.uuid4()}").status_code == 404
    assert client.get("/submissions/not-a-uuid").status_code == 404


def test_stored_state_comes_from_the_row_once_the_job_is_gone(client, post_form, fresh_form, redis, run_worker):
    hidden = fresh_form()
    post_form(hidden)
    run_worker()
    redis.flushall()  # result_ttl expired, or Redis was rebuilt
    assert client.get(f"/submissions/{hidden['submission_id']}.json").get_json()["state"] == "stored"



def test_receipt_of_a_stored_submission_is_unknown_not_missing_while_the_database_is_down(
        post_form, fresh_form, redis, run_worker, client, pg_server):
    hidden = fresh_form()
    assert post_form(hidden).status_code == 303
    run_worker()
    # The finished job has outlived JOB_RESULT_TTL: only the row knows the submission now.
    Job.fetch(hidden["submission_id"], connection=redis, serializer=JSONSerializer).delete()
    pg_server.stop()
    try:
        response = client.get(f"/submissions/{hidden['submission_id']}.json")
        assert response.status_code == 200
        assert response.get_json()["state"] == "unknown"
        # Without the database an unknown id can't be told from a stored one either.
        assert client.get(f"/submissions/{uuid.uuid4()}.json").get_json()["state"] == "unknown"
    finally:
        pg_server.start()
    assert client.get(f"/submissions/{hidden['submission_id']}.json").get_json()["state"] == "stored"
    assert client.get(f"/submissions/{uuid.uuid4()}.json").status_code == 404
