"""Every process with its server frozen (SIGSTOP: a partition or a hung host
looks the same, its kernel still acknowledging TCP): each gives up within
its bound, says in its log what it waits for, and carries on when the
server thaws (redisbounds/, pgbounds/).  The web's side is
test_frozen_database.py's and tests/test_cap.py's."""

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import timedelta

from rq import Worker

from submission import STORE_JOB
from tests.faults.conftest import Process, queue, submission
from tests.faults.test_frozen_database import frozen
from tests.servers import ROOT, wait_until
from worker import retention


@contextmanager
def telling(worker, redis):
    """A wait that times out below says what the worker logged since and where
    its jobs are in Redis: a fault that shows once in a while must explain
    itself the first time."""
    try:
        yield
    except TimeoutError as exc:
        q = queue(redis)
        where = {"queued": q.get_job_ids(), "intermediate": redis.lrange(q.intermediate_queue_key, 0, -1),
                 "started": q.started_job_registry.get_job_ids(), "scheduled": q.scheduled_job_registry.get_job_ids(),
                 "failed": q.failed_job_registry.get_job_ids(), "workers": [w.name for w in Worker.all(queue=q)]}
        # RQ's two lines per maintenance tick (every 2 s idle) would crowd out the rest.
        lines = [line for line in worker.log().splitlines() if "cleaning" not in line]
        raise TimeoutError(f"{exc}\nin Redis: {where}\n{worker.name} alive: {worker.alive()}, "
                           f"its log's end, maintenance ticks left out:\n" + "\n".join(lines[-60:])) from None


@contextmanager
def frozen_redis(redis_server):
    os.kill(redis_server.proc.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(redis_server.proc.pid, signal.SIGCONT)


def test_the_worker_says_it_lost_a_frozen_redis_and_works_on_after(
        app, start_worker, redis_server, redis_restored, redis, stored_ids):
    worker = start_worker()
    with telling(worker, redis), frozen_redis(redis_server):
        # FAST's WORKER_TTL of 17 s: RQ's blocking dequeue waits 2 s, its replies 12 s at most.
        # Frozen while idle, RQ's dequeue says so and retries; frozen in our
        # maintenance, it says which step gave up; frozen in RQ's (as at
        # start), RQ's loop quits and ours says so and starts another.
        said = ("Timeout reading from", "worker loop ended without a stop request; starting a new one once Redis answers")
        wait_until(lambda: any(line in worker.log() for line in said), 40,
                   "the worker to say it waits for Redis")
    later = submission(name="After the thaw")
    assert app.extensions["submission_queue"].enqueue(later)
    with telling(worker, redis):
        wait_until(lambda: later["id"] in stored_ids(), 60, "a job queued after the thaw", interval=0.2)
    # Its scheduler (which moves due retries to the queue) gave up too, and is started again.
    retried = submission(name="A retry after the thaw")
    queue(redis).enqueue_in(timedelta(seconds=1), STORE_JOB, submission=retried, job_id=retried["id"])
    with telling(worker, redis):
        wait_until(lambda: retried["id"] in stored_ids(), 120, "a retry due after the thaw", interval=0.5)
    assert worker.alive()


def test_the_retention_scheduler_says_it_lost_a_frozen_redis_and_beats_again(
        fault_env, processes, tmp_path, redis_server, redis_restored, redis):
    env = {**fault_env, "RETENTION_DAYS": "30", "RETENTION_INTERVAL": "1", "MIGRATE_ON_START": "0"}
    scheduler = Process("retention", [sys.executable, "-m", "worker.retention"], env, tmp_path / "retention.log")
    processes.append(scheduler)
    wait_until(lambda: retention.check(redis) == 0, 30, "the scheduler's first heartbeat")
    with frozen_redis(redis_server):
        wait_until(lambda: "retention scheduler lost Redis" in scheduler.log(), 30, "the scheduler to give up")
    thawed = time.time()
    wait_until(lambda: retention.check(redis) == 0 and redis.zscore("rq:cron_schedulers", retention.NAME) > thawed,
               90, "a heartbeat after the thaw", interval=0.5)
    assert scheduler.alive()


def erase(env, sid):
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "worker.erase", sid], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    return done, time.monotonic() - started


def test_the_erase_command_gives_up_on_a_frozen_server_and_erases_after(
        fault_env, pg_server, redis_server, redis_restored, post_form, fresh_form, run_worker, rows):
    env = {**fault_env, "WORKER_DATABASE_URL": fault_env["DATABASE_URL"], "WORKER_DB_TIMEOUT": "2"}
    hidden = fresh_form()
    sid = hidden["submission_id"]
    assert post_form(hidden).status_code == 303
    run_worker()
    with frozen(pg_server):
        done, took = erase(env, sid)
    assert done.returncode == 1 and "could not erase" in done.stderr and "did not answer" in done.stderr, done
    assert took < 15 and len(rows()) == 1
    with frozen_redis(redis_server):
        done, took = erase(env, sid)  # the tombstone is written; Redis's half waits
    assert done.returncode == 1 and "could not erase" in done.stderr and "Timeout" in done.stderr, done
    assert took < 20 and rows() == []
    done, _ = erase(env, sid)  # asked again: the rest is done
    assert done.returncode == 0 and sid in done.stdout, done


def test_a_worker_starting_on_a_frozen_postgresql_says_so_and_starts_when_it_thaws(
        fault_env, processes, tmp_path, pg_server, redis):
    worker = Process("worker", [sys.executable, "-m", "worker"], fault_env, tmp_path / "worker.log")
    processes.append(worker)
    with frozen(pg_server):
        # The migration's connect gives up after its lock timeout (worker/migrate.py), and is tried again.
        wait_until(lambda: "waiting for postgresql" in worker.log(), 40, "the worker to say it waits")
        assert "did not answer" in worker.log() and worker.alive()
    wait_until(lambda: any(w.pid == worker.pid for w in Worker.all(connection=redis)), 90, "the worker to start")
