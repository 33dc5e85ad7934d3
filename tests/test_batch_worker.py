"""BatchWorker (worker/batch_worker.py) against RQ's own per-job path: the
same Redis state, key by key, and one bad job failing alone, at once."""

import re
import time
import uuid
import zlib

import psycopg2
from rq import Queue
from rq.job import JobStatus
from rq.serializers import JSONSerializer

from submission import STORE_JOB
from tests.conftest import store_job_gone
from tests.servers import free_port
from worker import db, erasure, failures, jobs, metrics
from worker.__main__ import build_worker
from worker.batch_worker import BatchWorker
from worker.config import Config
from worker.survey_worker import SurveyWorker

JOBS = 5
# Values that are instants (or sums of durations): their presence is compared, not their value.
TIMES = {"created_at", "enqueued_at", "started_at", "ended_at", "last_heartbeat", "birth", "death",
         "total_working_time", "execution_started_at", "execution_ended_at",
         "ip_address"}  # not an instant, but the worker's own client port
HEX_ID = re.compile(r"\b[0-9a-f]{32}\b")


def submission(**fields):
    return {"version": 1, "id": str(uuid.uuid4()), "name": "Pika", "coat": "tortie", "donut": "strawberry",
            "submitted_at": "2026-01-01T00:00:00+00:00", **fields}


def enqueue(app, *submissions):
    for item in submissions:
        assert app.extensions["submission_queue"].enqueue(item)
    return [item["id"] for item in submissions]


def per_job_worker(env, redis):
    """RQ's per-job path: the SimpleWorker the project ran before batching, set up as build_worker sets up its own."""
    config = Config.from_env(env)
    return SurveyWorker([Queue(config.queue_name, connection=redis, serializer=JSONSerializer)],
                        connection=redis, serializer=JSONSerializer, maintenance_interval=config.maintenance_interval,
                        worker_ttl=config.worker_ttl, exception_handlers=[failures.fail_fast, metrics.count_failure])


def snapshot(redis, job_ids, worker_name):
    """Every key in Redis, with ids, instants and expiries made comparable:
    {key: (type, expiry in minutes or -1, contents)}."""
    names = {job_id: f"<job{i}>" for i, job_id in enumerate(job_ids)}
    names[worker_name] = "<worker>"

    def norm(value):
        if isinstance(value, bytes):
            try:
                text = value.decode()
            except UnicodeDecodeError:
                text = zlib.decompress(value).decode()  # a job's data: its function and arguments
        else:
            text = str(value)
        for real, name in names.items():
            text = text.replace(real, name)
        return HEX_ID.sub("<execution>", text)

    def fields(mapping):
        return {norm(k): ("<time>" if norm(k) in TIMES else norm(v)) for k, v in mapping.items()}

    state = {}
    for key in redis.scan_iter():
        kind = redis.type(key).decode()
        if kind == "hash":
            contents = fields(redis.hgetall(key))
        elif kind == "zset":
            # Scores are expiry instants: compared as minutes from now.
            contents = {norm(m): s if s in (float("inf"), float("-inf")) else round((s - time.time()) / 60)
                        for m, s in redis.zrange(key, 0, -1, withscores=True)}
        elif kind == "stream":
            contents = [fields(entry) for _, entry in redis.xrange(key)]
        elif kind == "list":
            contents = [norm(m) for m in redis.lrange(key, 0, -1)]
        elif kind == "set":
            contents = sorted(norm(m) for m in redis.smembers(key))
        else:
            contents = norm(redis.get(key))
        ttl = redis.ttl(key)
        state[norm(key)] = (kind, -1 if ttl < 0 else round(ttl / 60), contents)
    return state


def assert_working_time_within_the_jobs_span(redis, job_ids, worker):
    """One worker runs one thing at a time: the time it counts as working lies
    between the first job's start and the last job's end, whichever path ran them."""
    queue = Queue("submissions", connection=redis, serializer=JSONSerializer)
    runs = [queue.fetch_job(job_id) for job_id in job_ids]
    span = (max(job.ended_at for job in runs) - min(job.started_at for job in runs)).total_seconds()
    working = float(redis.hget(worker.key, "total_working_time"))
    assert 0 < working <= span + 1e-6


def test_a_batch_leaves_redis_as_rqs_per_job_path_does(app, env, redis, rows, caplog):
    one_by_one = per_job_worker(env, redis)
    ids = enqueue(app, *[submission(name=f"Cat {i}") for i in range(JOBS)])
    one_by_one.work(burst=True, with_scheduler=False)
    theirs = snapshot(redis, ids, one_by_one.name)
    assert len(rows()) == JOBS
    assert_working_time_within_the_jobs_span(redis, ids, one_by_one)

    redis.flushall()
    batched = build_worker(Config.from_env(env), redis)
    assert isinstance(batched, BatchWorker) and batched.batch_size > JOBS
    ids = enqueue(app, *[submission(name=f"Cat {i}") for i in range(JOBS)])
    stored_before = metrics.JOBS.labels(outcome="stored")._value.get()
    batched.work(burst=True, with_scheduler=False)
    ours = snapshot(redis, ids, batched.name)
    assert_working_time_within_the_jobs_span(redis, ids, batched)
    assert len(rows()) == 2 * JOBS
    # One batch: the first job dequeued by RQ, the others taken with it.
    assert metrics.JOBS.labels(outcome="stored")._value.get() - stored_before == JOBS
    assert f"batch of {JOBS} jobs OK" in caplog.text

    assert set(ours) == set(theirs)
    for key in theirs:
        assert ours[key] == theirs[key], key
    # What the comparison covers, spelled out: each job finished, with its
    # result kept, in the finished registry; nothing left started, queued or failed.
    for i in range(JOBS):
        kind, ttl, job = ours[f"rq:job:<job{i}>"]
        assert job["status"] == "finished" and job["worker_name"] == "<worker>" and ttl == app.config["JOB_RESULT_TTL"] // 60
        assert {"started_at", "ended_at", "last_heartbeat"} <= set(job)
        assert ours[f"rq:results:<job{i}>"][2][0]["type"] == "1"  # Result.Type.SUCCESSFUL
        assert f"<job{i}>" in ours["rq:finished:submissions"][2]
    assert not any(key.startswith(("rq:wip:", "rq:failed:", "rq:execution")) for key in ours)
    worker = ours["rq:worker:<worker>"][2]
    assert worker["successful_job_count"] == str(JOBS) and "failed_job_count" not in worker
    assert "total_working_time" in worker


def test_one_bad_row_fails_alone_and_at_once(app, env, redis, rows, run_worker):
    good = [submission(name=f"Cat {i}") for i in range(4)]
    too_long = submission(name="x" * 60)          # the table's CHECK refuses it
    too_long_too = submission(coat="y" * 60)      # and this one, in the same batch
    drifted = submission(version=2)               # a payload this worker cannot read
    enqueue(app, good[0], too_long, *good[1:3], too_long_too, drifted, good[3])
    run_worker()

    assert sorted(r["submission_id"] for r in rows()) == sorted(s["id"] for s in good)
    queue = Queue("submissions", connection=redis, serializer=JSONSerializer)
    bad = {too_long["id"]: "CheckViolation", too_long_too["id"]: "CheckViolation", drifted["id"]: "PayloadError"}
    assert sorted(queue.failed_job_registry.get_job_ids()) == sorted(bad)
    assert queue.scheduled_job_registry.count == 0  # no retry scheduled
    assert queue.count == 0 and queue.started_job_registry.count == 0
    for job_id, reason in bad.items():
        job = queue.fetch_job(job_id)
        assert job.get_status() == JobStatus.FAILED
        # Its own error alone: not chained under the batch's, which names another row.
        traceback = job.latest_result().exc_string
        assert reason in traceback and "During handling of the above exception" not in traceback
        assert not any(other in traceback for other in bad if other != job_id)
    for item in good:
        assert queue.fetch_job(item["id"]).get_status() == JobStatus.FINISHED


def test_a_batch_the_database_refuses_retries_each_job(app, env, redis, monkeypatch):
    monkeypatch.setattr(db.time, "sleep", lambda s: None)
    db.configure(f"postgresql://survey@127.0.0.1:{free_port()}/survey")  # nothing listens there
    ids = enqueue(app, *[submission() for _ in range(JOBS)])
    retried = metrics.JOBS.labels(outcome="retried")._value.get()
    build_worker(Config.from_env(env), redis).work(burst=True, with_scheduler=False)
    queue = Queue("submissions", connection=redis, serializer=JSONSerializer)
    # Each job failed for the connection, and waits out its own back-off.
    assert sorted(queue.scheduled_job_registry.get_job_ids()) == sorted(ids)
    assert metrics.JOBS.labels(outcome="retried")._value.get() - retried == JOBS
    assert queue.failed_job_registry.count == 0 and queue.started_job_registry.count == 0
    for job_id in ids:
        assert queue.fetch_job(job_id).retries_left == 9  # one retry spent, like any failed job


def test_permanent_errors_spend_the_retries_and_others_keep_them(app):
    job = type("Job", (), {"retries_left": 9})()
    failures.fail_fast(job, psycopg2.errors.CheckViolation, None, None)
    assert job.retries_left == 0
    job.retries_left = 9
    failures.fail_fast(job, psycopg2.OperationalError, None, None)
    assert job.retries_left == 9


def submissions_queue(redis):
    return Queue("submissions", connection=redis, serializer=JSONSerializer)


def test_a_batch_releases_its_jobs_dependents(app, env, redis, rows, run_worker):
    ids = enqueue(app, *[submission(name=f"Cat {i}") for i in range(JOBS)])
    later = submission(name="After Cat 2")
    queue = submissions_queue(redis)
    dependent = queue.enqueue(STORE_JOB, submission=later, job_id=later["id"], depends_on=ids[2])
    assert dependent.get_status() == JobStatus.DEFERRED
    run_worker()
    assert sorted(r["submission_id"] for r in rows()) == sorted(ids + [later["id"]])
    assert dependent.get_status() == JobStatus.FINISHED
    assert queue.deferred_job_registry.count == 0


def test_max_jobs_counts_every_job_of_a_batch(app, env, redis, rows):
    ids = enqueue(app, *[submission(name=f"Cat {i}") for i in range(JOBS)])
    worker = build_worker(Config.from_env(env), redis)
    assert worker.work(burst=True, with_scheduler=False, max_jobs=3)
    assert sorted(r["submission_id"] for r in rows()) == sorted(ids[:3])
    assert submissions_queue(redis).get_job_ids() == ids[3:]  # the rest wait, in their order
    assert worker.work(burst=True, with_scheduler=False)  # and the same worker's next loop runs them
    assert sorted(r["submission_id"] for r in rows()) == sorted(ids)


def test_a_job_that_cannot_batch_keeps_its_turn(app, env, redis, rows, run_worker):
    """Taken with a batch but unable to join it, a job goes back to the front
    of the queue: what queued after it does not run before it."""
    before, after = [submission(name=f"Cat {i}") for i in range(2)], [submission(name=f"Kit {i}") for i in range(2)]
    drifted = submission(version=2)
    ids = enqueue(app, *before, drifted, *after)
    run_worker()
    queue = submissions_queue(redis)
    assert queue.fetch_job(drifted["id"]).get_status() == JobStatus.FAILED
    assert sorted(r["submission_id"] for r in rows()) == sorted(ids[:2] + ids[3:])
    failed_at = queue.fetch_job(drifted["id"]).ended_at
    for item in after:
        assert queue.fetch_job(item["id"]).started_at >= failed_at
    assert not redis.lrange(queue.intermediate_queue_key, 0, -1)


def test_a_worker_of_two_queues_takes_one_job_at_a_time(app, env, redis, rows):
    other = Queue("other", connection=redis, serializer=JSONSerializer)
    queue = submissions_queue(redis)
    drifted = submission(version=2)
    ids = enqueue(app, submission(name="Cat 0"), drifted, submission(name="Cat 1"))
    worker = BatchWorker([other, queue], connection=redis, serializer=JSONSerializer,
                         exception_handlers=[failures.fail_fast])
    worker.work(burst=True, with_scheduler=False)
    assert sorted(r["submission_id"] for r in rows()) == sorted([ids[0], ids[2]])
    # Nothing left for RQ's maintenance to fail later as "stuck in intermediate queue".
    assert not redis.lrange(queue.intermediate_queue_key, 0, -1)
    assert queue.fetch_job(ids[0]).get_status() == JobStatus.FINISHED


class CancelsBeforeTheStart(BatchWorker):
    """Between taking the ids and starting them, another client cancels one job and deletes another."""

    def _start(self, job, ids, queue):
        queue.fetch_job(ids[1]).cancel()
        queue.fetch_job(ids[2]).delete()
        return super()._start(job, ids, queue)


def test_a_job_cancelled_or_deleted_after_it_was_taken_does_not_run(app, env, redis, rows):
    ids = enqueue(app, *[submission(name=f"Cat {i}") for i in range(JOBS)])
    CancelsBeforeTheStart([submissions_queue(redis)], connection=redis, serializer=JSONSerializer).work(
        burst=True, with_scheduler=False)
    cancelled, deleted = ids[2], ids[3]  # ids[0] was RQ's own dequeue; the hook counts the taken ones
    queue = submissions_queue(redis)
    assert sorted(r["submission_id"] for r in rows()) == sorted(set(ids) - {cancelled, deleted})
    assert queue.fetch_job(cancelled).get_status() == JobStatus.CANCELED
    assert not redis.exists(f"rq:job:{deleted}")  # not re-created by the start
    assert not redis.lrange(queue.intermediate_queue_key, 0, -1)
    assert queue.started_job_registry.count == 0


class ErasesBeforeTheStart(BatchWorker):
    """Between taking the ids and starting them, the erase of one runs (on another worker)."""

    def _start(self, job, ids, queue):
        erasure.erase_submission(ids[1], self.connection)
        return super()._start(job, ids, queue)


def test_a_store_erased_after_it_was_taken_does_not_run(app, env, redis, rows):
    names = [f"Cat {i}" for i in range(JOBS)]
    names[2] = "Taken Tabitha"  # ids[0] was RQ's own dequeue; the hook erases the second one taken
    ids = enqueue(app, *[submission(name=name) for name in names])
    ErasesBeforeTheStart([submissions_queue(redis)], connection=redis, serializer=JSONSerializer).work(
        burst=True, with_scheduler=False)
    queue = submissions_queue(redis)
    assert sorted(r["submission_id"] for r in rows()) == sorted(set(ids) - {ids[2]})
    assert store_job_gone(redis, ids[2], "Taken Tabitha")  # not re-created by the start
    assert not redis.lrange(queue.intermediate_queue_key, 0, -1)
    assert queue.started_job_registry.count == 0 and queue.finished_job_registry.count == JOBS - 1
