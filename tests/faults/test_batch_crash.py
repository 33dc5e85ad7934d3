"""A worker SIGKILLed in the middle of a batch (worker/batch_worker.py).

Each job of a batch is in RQ's StartedJobRegistry with its own execution
before the INSERT runs, so an abandoned batch comes back the way an
abandoned single job does (tests/faults/test_worker_crash.py): once the
entries expire (job timeout + 60 s), a worker's maintenance retries each job,
and ON CONFLICT makes the rows that were already committed no-ops."""

import signal
import subprocess
import sys
import time

import psycopg2
from rq.job import JobStatus

from tests.faults.conftest import failed, queue, submission
from tests.servers import ROOT, wait_until
from tests.test_webhooks import SECRET, Receiver, survey_with_webhook
from worker.config import Config
from worker.migrate import migrate

JOB_TIMEOUT = 10
BATCH = 60
LOCK = 4242
# Every INSERT into the cat survey's table waits, inside its transaction, for the test to let go of an advisory lock.
HOLD_INSERTS = f"""
CREATE FUNCTION hold_inserts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_advisory_xact_lock_shared({LOCK}); RETURN NULL; END $$;
CREATE TRIGGER hold_inserts BEFORE INSERT ON answers.cats FOR EACH STATEMENT EXECUTE FUNCTION hold_inserts();
"""
RELEASE_INSERTS = "DROP TRIGGER IF EXISTS hold_inserts ON answers.cats; DROP FUNCTION IF EXISTS hold_inserts();"


def test_batches_killed_mid_transaction_after_commit_and_before_start_are_stored_exactly_once(
        app, fault_env, env, start_worker, redis_server, redis_restored, waiting_on_lock, redis, stored_ids, tmp_path):
    """A: the worker is killed while its batch's INSERT is in flight;
    B: the worker is killed after its batch's INSERT committed, before RQ
    heard of it, and before it enqueued the webhook's deliveries: each is
    still delivered, at least once;
    C: the worker is killed between taking a batch's ids and starting them:
    they wait on RQ's intermediate list, and RQ's maintenance gives each one
    back through a retry a minute later, as it does the one job its own
    dequeue moved there when the worker died before starting it.
    One wait for RQ's recovery serves the three."""
    receiver = Receiver().start()
    hooked = {"SURVEY_FILE": str(survey_with_webhook(tmp_path / "survey", f"http://127.0.0.1:{receiver.port}/")),
              "CATS_WEBHOOK_SECRET": SECRET, "WEBHOOK_ALLOW_PRIVATE": "1"}
    submissions = app.extensions["submission_queue"]
    submissions.job_options["timeout"] = JOB_TIMEOUT
    # Workers below start without applying the schema: that would wait on the held inserts.
    migrate(Config.from_env(fault_env))
    owner = psycopg2.connect(env["DATABASE_URL"])
    owner.autocommit = True
    try:
        with owner.cursor() as cur:
            cur.execute(HOLD_INSERTS)
            cur.execute("SELECT pg_advisory_lock(%s)", (LOCK,))

        batches, workers = {}, {}
        for n, name in enumerate("AB", start=1):
            # Queued before the worker starts, so its first dequeue finds them all waiting.
            batches[name] = [submission(name=f"{name} {i}") for i in range(BATCH)]
            for item in batches[name]:
                assert submissions.enqueue(item)
            workers[name] = start_worker(MIGRATE_ON_START="0", **hooked)
            wait_until(lambda: waiting_on_lock(n), 30, f"batch {name}'s insert to be in flight")
            # One batch: every job started, each with its own entry in the started registry.
            wait_until(lambda: queue(redis).started_job_registry.count == n * BATCH, 10, f"batch {name} started")
            assert all(queue(redis).fetch_job(s["id"]).get_status() == JobStatus.STARTED for s in batches[name])
            if name == "A":
                workers["A"].signal(signal.SIGKILL)
                assert workers["A"].wait(10) == -signal.SIGKILL

        # B: freeze Redis, let the inserts go on (A's orphaned backend never
        # commits: its client is gone), kill B's worker while it waits on Redis.
        redis_server.proc.send_signal(signal.SIGSTOP)
        try:
            with owner.cursor() as cur:
                cur.execute("SELECT pg_advisory_unlock(%s)", (LOCK,))
            wait_until(lambda: len(stored_ids()) >= BATCH, 30, "batch B's insert to commit")
            workers["B"].signal(signal.SIGKILL)
            assert workers["B"].wait(10) == -signal.SIGKILL
        finally:
            redis_server.proc.send_signal(signal.SIGCONT)
        killed_at = time.monotonic()
        with owner.cursor() as cur:
            cur.execute(RELEASE_INSERTS)  # waits for A's orphaned backend to end
        assert sorted(stored_ids()) == sorted(s["id"] for s in batches["B"])
    finally:
        with owner.cursor() as cur:
            cur.execute(RELEASE_INSERTS)
        owner.close()
    for item in batches["A"] + batches["B"]:
        assert queue(redis).fetch_job(item["id"]).get_status() == JobStatus.STARTED

    batches["C"] = [submission(name=f"C {i}") for i in range(20)]
    for item in batches["C"]:
        assert submissions.enqueue(item)
    taker = start_worker("tests.faults.stop_before_start", MIGRATE_ON_START="0", **hooked)
    wait_until(lambda: stopped(taker), 30, "the worker to stop between the take and the start")
    assert sorted(i.decode() for i in redis.lrange(queue(redis).intermediate_queue_key, 0, -1)) == \
        sorted(s["id"] for s in batches["C"])
    assert queue(redis).count == 0 and queue(redis).started_job_registry.count == 2 * BATCH
    taker.signal(signal.SIGKILL)
    assert taker.wait(10) == -signal.SIGKILL

    everything = batches["A"] + batches["B"] + batches["C"]
    # No batch reached its deliveries.
    assert redis.llen("rq:queue:webhooks") == 0
    start_worker(**hooked)
    wait_until(lambda: all(queue(redis).fetch_job(s["id"]).get_status() == JobStatus.FINISHED for s in everything),
               JOB_TIMEOUT + 60 + 60, "the abandoned batches to finish", interval=0.5)
    print(f"abandoned batches recovered {time.monotonic() - killed_at:.1f}s after the kills")
    ids = stored_ids()
    assert len(ids) == len(set(ids)) == 2 * BATCH + len(batches["C"])  # each exactly once
    assert sorted(ids) == sorted(s["id"] for s in everything)
    assert failed(redis).count == 0
    assert not redis.lrange(queue(redis).intermediate_queue_key, 0, -1)
    for item in everything:
        # Retried by StartedJobRegistry.cleanup or the intermediate list's
        # (one retry spent), as an abandoned single job is.
        assert queue(redis).fetch_job(item["id"]).retries_left == 9
    try:
        subprocess.run([sys.executable, "-m", "worker.deliver", "--burst"], cwd=ROOT, env={**fault_env, **hooked},
                       capture_output=True, timeout=120, check=True)
        assert receiver.unverified == 0
        assert set(receiver.events("answer.stored")) == {s["id"] for s in everything}
    finally:
        receiver.stop()


def stopped(proc):
    """True once the process has stopped itself (state T in /proc/PID/stat)."""
    return open(f"/proc/{proc.pid}/stat").read().rsplit(")", 1)[1].split()[0] == "T"
