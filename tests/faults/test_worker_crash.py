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

from rq import Worker
from rq.job import JobStatus

from tests.faults.conftest import queue
from tests.servers import wait_until

JOB_TIMEOUT = 10  # long enough that no job in hand times out while the test sets up its faults


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


def test_abandoned_jobs_are_recovered_and_stored_exactly_once(
        app, start_worker, redis_server, redis_restored, post_form, fresh_form, row_lock, waiting_on_lock,
        redis, stored_ids):
    """Three ways a job is left STARTED in RQ, recovered together (the recovery
    takes JOB_TIMEOUT + 60 s, so one test pays for it once):

    A: its worker is SIGKILLed while the insert is in flight (not committed);
    B: its worker is SIGKILLed after the insert committed, before RQ heard of it;
    C: Redis goes away after the insert committed, and the worker lives on.
    """
    app.extensions["submission_queue"].job_options["timeout"] = JOB_TIMEOUT
    # Workers first: a starting worker re-applies the schema, which waits for row locks.
    started = {w.pid: w for w in (start_worker(), start_worker(), start_worker())}
    jobs, locks, workers = {}, {}, {}
    for name in "ABC":
        # One job per worker, each held inside its job by a row lock.
        hidden = fresh_form()
        jobs[name] = hidden["submission_id"]
        locks[name] = row_lock(jobs[name])
        assert post_form(hidden).status_code == 303
        wait_until(lambda: waiting_on_lock(len(jobs)), 30, f"job {name} to be in progress")
    for w in Worker.all(connection=redis):
        for name, sid in jobs.items():
            if w.get_current_job_id() == sid:
                workers[name] = started[w.pid]
    assert sorted(workers) == ["A", "B", "C"]

    # B: freeze Redis, let B's insert commit, then kill its worker while it waits on Redis.
    redis_server.proc.send_signal(signal.SIGSTOP)
    try:
        locks["B"].rollback()
        wait_until(lambda: jobs["B"] in stored_ids(), 30, "B's insert to commit")
        workers["A"].signal(signal.SIGKILL)  # A: killed mid-insert
        workers["B"].signal(signal.SIGKILL)
        assert workers["A"].wait(10) == -signal.SIGKILL and workers["B"].wait(10) == -signal.SIGKILL
    finally:
        redis_server.proc.send_signal(signal.SIGCONT)
    locks["A"].rollback()  # A's dead connection never commits

    # C: Redis stops, C's insert commits, the worker cannot tell RQ; Redis returns.
    redis_server.stop()
    try:
        locks["C"].rollback()
        wait_until(lambda: jobs["C"] in stored_ids(), 30, "C's insert to commit")
        wait_until(lambda: "lost Redis" in workers["C"].log() or "could not connect" in workers["C"].log(),
                   30, "worker C to notice")
    finally:
        redis_server.start()
    killed_at = time.monotonic()

    assert sorted(stored_ids()) == sorted([jobs["B"], jobs["C"]])
    for name in "ABC":
        assert queue(redis).fetch_job(jobs[name]).get_status() == JobStatus.STARTED, name
    retries_left = {name: queue(redis).fetch_job(jobs[name]).retries_left for name in "ABC"}

    # A worker is running again (C's survived); its maintenance finds the abandoned jobs.
    assert workers["C"].alive(), workers["C"].log()[-3000:]
    start_worker()
    deadline = JOB_TIMEOUT + 60 + 30
    wait_until(lambda: all(queue(redis).fetch_job(jobs[n]).get_status() == JobStatus.FINISHED for n in "ABC"),
               deadline, "the abandoned jobs to finish", interval=0.5)
    print(f"abandoned jobs recovered {time.monotonic() - killed_at:.1f}s after the faults")
    ids = stored_ids()
    assert sorted(ids) == sorted(jobs.values())  # each exactly once
    for name in "ABC":
        # Retried by StartedJobRegistry.cleanup (it spends one retry), not re-enqueued by hand.
        assert queue(redis).fetch_job(jobs[name]).retries_left == retries_left[name] - 1, name
    assert workers["C"].alive()
