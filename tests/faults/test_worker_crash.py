"""The worker stopped or killed in the middle of a job.

SIGTERM is a warm shutdown: the job in hand finishes, then the worker exits.
SIGKILL abandons the job in RQ's StartedJobRegistry; RQ 3.0 recovers it in
StartedJobRegistry.cleanup(), which every worker runs from its maintenance
tasks (every WORKER_MAINTENANCE_INTERVAL seconds) once the job's entry
expires: a SimpleWorker scores it `job timeout + 60` seconds after the job
started (SimpleWorker.get_heartbeat_ttl).  The job is then retried (it has
retries left), and the insert's ON CONFLICT makes the re-run store nothing
twice."""

import signal
import time

from rq.job import JobStatus

from tests.faults.conftest import queue
from tests.servers import wait_until

JOB_TIMEOUT = 5


def test_sigterm_finishes_the_job_in_hand_then_exits(
        start_worker, post_form, fresh_form, row_lock, waiting_on_lock, redis, stored_ids):
    worker = start_worker()
    hidden = fresh_form()
    sid = hidden["submission_id"]
    lock = row_lock(sid)
    assert post_form(hidden).status_code == 303
    wait_until(lambda: waiting_on_lock(1), 30, "the worker to be inside its job")

    worker.signal(signal.SIGTERM)
    time.sleep(1)
    assert worker.alive(), "the worker left its job unfinished"
    lock.rollback()  # let the job finish

    assert worker.wait(30) == 0, worker.log()[-3000:]
    assert stored_ids() == [sid]
    assert queue(redis).fetch_job(sid).get_status() == JobStatus.FINISHED
    assert "warm shut down" in worker.log() or "stopping on request" in worker.log()


def test_redis_lost_after_the_insert_commits(
        app, start_worker, redis_server, redis_restored, post_form, fresh_form, row_lock, waiting_on_lock,
        redis, stored_ids):
    app.extensions["submission_queue"].job_options["timeout"] = JOB_TIMEOUT
    worker = start_worker()
    hidden = fresh_form()
    sid = hidden["submission_id"]
    lock = row_lock(sid)
    assert post_form(hidden).status_code == 303
    wait_until(lambda: waiting_on_lock(1), 30, "the worker to be inside its job")
    redis_server.stop()
    lock.rollback()
    wait_until(lambda: stored_ids() == [sid], 30, "the insert to commit")
    time.sleep(2)
    redis_server.start()
    time.sleep(3)
    print(worker.log())
    assert worker.alive(), worker.log()[-3000:]
