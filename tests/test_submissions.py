"""SubmissionQueue.enqueue builds its job and hands it to RQ's public
Queue.enqueue_job(..., unique=True); these tests hold the result to what RQ's
one-call enqueue_call(..., unique=True) leaves in Redis, key by key."""

import uuid

from rq import Queue
from rq.serializers import JSONSerializer

from submission import STORE_JOB
from web.submissions import SubmissionQueue

TIMES = {b"created_at", b"enqueued_at"}


def submission():
    return {"id": str(uuid.uuid4()), "name": "Pika", "coat": "tortie", "donut": "strawberry",
            "submitted_at": "2026-01-01T00:00:00+00:00"}


def test_enqueue_leaves_redis_as_rq_unique_enqueue_does(app, redis):
    ours = app.extensions["submission_queue"]
    mine, theirs = submission(), submission()
    assert ours.enqueue(mine) is True

    rq_queue = Queue(app.config["QUEUE_NAME"], connection=redis, serializer=JSONSerializer)
    rq_queue.enqueue_call(STORE_JOB, kwargs={"submission": theirs}, job_id=theirs["id"], unique=True,
                          retry=ours.retry, **ours.job_options, description=f"store submission {theirs['id']}")

    a = redis.hgetall(f"rq:job:{mine['id']}")
    b = redis.hgetall(f"rq:job:{theirs['id']}")
    assert set(a) == set(b)
    for field in set(a) - TIMES - {b"data", b"description"}:
        assert a[field] == b[field], field
    assert a[b"description"].decode() == f"store submission {mine['id']}"
    # The same job once RQ loads it: function, arguments, retries, timeouts.
    mine_job, their_job = rq_queue.fetch_job(mine["id"]), rq_queue.fetch_job(theirs["id"])
    assert mine_job.func_name == their_job.func_name == STORE_JOB
    assert mine_job.kwargs == {"submission": mine}
    assert (mine_job.retries_left, mine_job.retry_intervals, mine_job.timeout, mine_job.result_ttl,
            mine_job.failure_ttl) == (their_job.retries_left, their_job.retry_intervals, their_job.timeout,
                                      their_job.result_ttl, their_job.failure_ttl)
    assert redis.ttl(f"rq:job:{mine['id']}") == redis.ttl(f"rq:job:{theirs['id']}") == -1
    assert rq_queue.job_ids == [mine["id"], theirs["id"]]
    # `rq info` finds the queue through this set.
    assert redis.smembers("rq:queues") == {rq_queue.key.encode()}


def test_enqueue_twice_is_one_job_and_keeps_the_first(app, redis):
    ours = app.extensions["submission_queue"]
    first = submission()
    assert ours.enqueue(first) is True
    assert ours.enqueue({**first, "name": "Changed"}) is False
    rq_queue = Queue(app.config["QUEUE_NAME"], connection=redis, serializer=JSONSerializer)
    assert rq_queue.job_ids == [first["id"]]
    assert rq_queue.fetch_job(first["id"]).kwargs["submission"]["name"] == "Pika"


def test_enqueue_on_a_fresh_connection_works_without_a_cached_script(env, redis):
    redis.script_flush()
    queue = SubmissionQueue({"REDIS_URL": env["REDIS_URL"], "QUEUE_NAME": "submissions",
                             "JOB_RETRY_INTERVALS": [1], "JOB_TIMEOUT": 30, "JOB_FAILURE_TTL": 60,
                             "JOB_RESULT_TTL": 60})
    assert queue.enqueue(submission()) is True
