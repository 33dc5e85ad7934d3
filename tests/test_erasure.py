"""Erasure: a tombstone instead of the row, and never the row again,
whatever the order of a store and an erase of the same submission."""

import threading
import time
import uuid
from datetime import datetime, timezone

import psycopg2
import pytest
from rq import Queue, Retry
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

import submission as payload
from submission import STORE_JOB, erased_key
from submission.cap import Cap
from tests.conftest import hidden_fields, redis_holding, store_job_gone, waiting
from worker import erasure, jobs


def submission(**fields):
    return {"id": str(uuid.uuid4()), "name": "Pika", "coat": "tortie", "donut": "glazed",
            "submitted_at": datetime.now(timezone.utc).isoformat(), **fields}


@pytest.fixture
def owner(env):
    conns = []

    def connect():
        conn = psycopg2.connect(env["DATABASE_URL"])
        conns.append(conn)
        return conn
    yield connect
    for conn in conns:
        conn.close()


QUEUE = "submissions"


def queue(redis):
    return Queue(QUEUE, connection=redis, serializer=JSONSerializer)


def tombstones(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT submission_id::text FROM erasures ORDER BY 1")
        return [r[0] for r in cur.fetchall()]


def waiting_on_lock(conn, n=1):
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid()")
        return cur.fetchone()[0] >= n


def in_thread(work):
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("value", work()))
    thread.start()
    return thread, result


def wait_for(predicate, timeout=10):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_erase_leaves_a_tombstone_and_no_answer(env, owner, redis, rows):
    sub = submission()
    jobs.store_submission(sub)
    assert erasure.erase_submission(sub["id"], redis) == {"erased": True}
    assert rows() == []
    conn = owner()
    assert tombstones(conn) == [sub["id"]]
    with conn.cursor() as cur:
        cur.execute("SELECT * FROM erasures")
        # No answers: the id, when, and which survey's table it left (for that survey's cap).
        assert [c.name for c in cur.description] == ["submission_id", "erased_at", "survey_table"]
    assert erasure.erase_submission(sub["id"], redis) == {"erased": False}  # again: nothing more
    assert tombstones(conn) == [sub["id"]]


def test_a_store_after_the_erase_stores_nothing(env, redis, rows):
    """The erase arrived while the store was queued, or the store was re-delivered."""
    first, second = submission(), submission()
    erasure.erase_submission(first["id"], redis)
    assert jobs.store_submission(first) == {"inserted": False}
    jobs.store_submission(second)
    erasure.erase_submission(second["id"], redis)
    # The batched insert obeys the tombstones too.
    assert jobs.store_submissions([first, second], Cap(redis, "submissions")) == [{"inserted": False}] * 2
    assert rows() == []


def interleave(owner, first, params, second):
    """Run `first` (SQL) in a transaction left open, then `second` (a job) in a
    thread; commit `first` once `second` waits for it.  Returns what `second`
    returned, and a connection for looking afterwards."""
    held = owner()
    with held.cursor() as cur:
        cur.execute(first, params)
    thread, result = in_thread(second)
    watcher = owner()
    watcher.autocommit = True
    # Without the lock the second would not wait; the outcome says what that costs.
    wait_for(lambda: waiting_on_lock(watcher) or not thread.is_alive())
    held.commit()
    thread.join(10)
    return result["value"], watcher


def test_an_erase_committing_while_a_store_is_in_flight_wins(env, owner, redis, rows):
    """The store's insert is not committed when the erase starts: the erase
    waits for it, then deletes the row it committed."""
    sub = submission()
    ((insert, params),) = jobs.inserts([payload.parse(sub)])
    erased, watcher = interleave(owner, insert, params, lambda: erasure.erase_submission(sub["id"], redis))
    assert erased == {"erased": True}
    assert rows() == []
    assert tombstones(watcher) == [sub["id"]]


def test_a_store_arriving_while_an_erase_is_in_flight_stores_nothing(env, owner, rows):
    """The erase has not committed its tombstone when the store checks for
    one: the store waits for it, then skips the row."""
    sub = submission()
    stored, _ = interleave(owner, erasure.ERASE, {"ids": [sub["id"]]}, lambda: jobs.store_submission(sub))
    assert stored == {"inserted": False}
    assert rows() == []


def as_job(redis, func, **kwargs):
    """func(**kwargs) run as RQ runs it, inside its job (its Redis connection at hand)."""
    return Job.create(func, kwargs=kwargs, connection=redis, serializer=JSONSerializer).perform()


def test_retention_erases_only_answers_older_than_its_days(env, owner, redis, rows):
    old, recent = [submission() for _ in range(3)], submission()
    jobs.store_submissions(old + [recent], Cap(redis, "submissions"))
    conn = owner()
    with conn, conn.cursor() as cur:
        cur.execute("UPDATE cats SET stored_at = now() - interval '31 days', submitted_at = now() - interval '31 days' "
                    "WHERE submission_id = ANY (%s::uuid[])", ([s["id"] for s in old],))
    assert as_job(redis, erasure.erase_expired, days=30) == {"erased": 3}
    assert [r["submission_id"] for r in rows()] == [recent["id"]]
    assert tombstones(conn) == sorted(s["id"] for s in old)
    # Re-delivered, the old store jobs bring nothing back.
    assert jobs.store_submissions(old, Cap(redis, "submissions")) == [{"inserted": False}] * 3
    assert as_job(redis, erasure.erase_expired, days=30) == {"erased": 0}
    assert len(rows()) == 1


def erase_from_receipt(client, sid):
    """What the visitor does: open the receipt, press "Erase my answer" (or, after a failed erase, "Ask again")."""
    page = client.get(f"/submissions/{sid}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Erase my answer" in html or "Ask again to erase it" in html
    return client.post(f"/submissions/{sid}/erase", data={"csrf_token": hidden_fields(html)["csrf_token"]})


def test_erase_from_the_receipt_travels_through_the_queue(client, post_form, fresh_form, redis, run_worker, rows):
    hidden = fresh_form()
    sid = hidden["submission_id"]
    assert post_form(hidden).status_code == 303
    run_worker()
    assert len(rows()) == 1

    # Without the token nothing is queued: another site cannot erase for the visitor.
    assert client.post(f"/submissions/{sid}/erase", data={"csrf_token": "forged"}).status_code == 400
    response = erase_from_receipt(client, sid)
    assert response.status_code == 303 and response.headers["Location"] == f"/submissions/{sid}"
    assert client.post(f"/submissions/{sid}/erase", data={"csrf_token": fresh_form()["csrf_token"]}).status_code == 303
    assert queue(redis).job_ids == [f"erase-{sid}"]  # the double click is one job
    assert len(rows()) == 1  # the web only queues it
    page = client.get(f"/submissions/{sid}").get_data(as_text=True)
    assert "Erase requested" in page and "Pika" not in page and "Erase my answer" not in page

    run_worker()
    assert rows() == []
    page = client.get(f"/submissions/{sid}").get_data(as_text=True)
    assert 'data-state="erased"' in page and "Erased at" in page and "Erase my answer" not in page
    assert client.get(f"/submissions/{sid}.json").get_json()["state"] == "erased"


def test_an_erase_queued_behind_its_store_leaves_no_row(client, post_form, fresh_form, redis, run_worker, rows):
    hidden = fresh_form()
    sid = hidden["submission_id"]
    assert post_form(hidden, name="Erasmus Whiskerton").status_code == 303
    assert erase_from_receipt(client, sid).status_code == 303  # the store is still queued
    assert queue(redis).job_ids == [sid, f"erase-{sid}"]
    run_worker()
    assert rows() == []
    assert client.get(f"/submissions/{sid}.json").get_json()["state"] == "erased"
    # The finished store job, answers and all, went with the erase, not after JOB_RESULT_TTL.
    assert store_job_gone(redis, sid, "Erasmus Whiskerton")
    # The form sent again (Back, then Send) is refused at once: nothing queued, nothing in Redis.
    again = post_form(hidden, name="Erasmus Whiskerton")
    assert again.status_code == 410 and "This answer was erased" in again.get_data(as_text=True)
    assert hidden_fields(again.get_data(as_text=True))["submission_id"] != sid
    assert store_job_gone(redis, sid, "Erasmus Whiskerton")
    run_worker()
    assert rows() == []


def test_an_erase_deletes_the_store_job_still_queued(app, client, post_form, fresh_form, redis, run_worker, rows):
    """The erase runs before the store (another worker took it first)."""
    hidden = fresh_form()
    sid = hidden["submission_id"]
    assert post_form(hidden, name="Queued Quentin").status_code == 303
    assert redis_holding(redis, "Queued Quentin") == [f"rq:job:{sid}"]  # the check can see it
    assert erasure.erase_submission(sid, redis) == {"erased": False}
    assert queue(redis).job_ids == [] and waiting(app) == 0
    assert store_job_gone(redis, sid, "Queued Quentin")
    run_worker()
    assert rows() == []
    assert client.get(f"/submissions/{sid}.json").get_json()["state"] == "erased"


def test_an_erase_deletes_the_store_job_that_failed_for_good(app, client, owner, redis, run_worker, rows):
    """A row PostgreSQL refuses fails at once, into RQ's failed registry for
    JOB_FAILURE_TTL (30 days), answers and the refusal's message included."""
    refused = submission(name="Refused Rufus " + "x" * 50)  # longer than the table's CHECK allows
    sid = refused["id"]
    assert app.extensions["submission_queue"].enqueue(refused)
    run_worker()
    assert queue(redis).failed_job_registry.get_job_ids() == [sid]
    assert redis_holding(redis, "Refused Rufus")  # the check can see them
    assert client.get(f"/submissions/{sid}.json").get_json()["state"] == "failed"
    assert erase_from_receipt(client, sid).status_code == 303
    run_worker()
    assert rows() == [] and tombstones(owner()) == [sid]
    assert queue(redis).failed_job_registry.count == 0
    assert store_job_gone(redis, sid, "Refused Rufus")
    assert client.get(f"/submissions/{sid}.json").get_json()["state"] == "erased"


def test_an_erase_leaves_a_running_store_job_alone(app, owner, redis, rows):
    """Its worker would not notice the delete; the tombstone stops it storing."""
    sub = submission(name="Running Rita")
    assert app.extensions["submission_queue"].enqueue(sub)
    job = Job.fetch(sub["id"], connection=redis, serializer=JSONSerializer)
    job.set_status(JobStatus.STARTED)
    assert erasure.erase_submission(sub["id"], redis) == {"erased": False}
    assert job.get_status(refresh=True) == JobStatus.STARTED
    assert jobs.store_submission(job.kwargs["submission"]) == {"inserted": False}
    assert rows() == [] and tombstones(owner()) == [sub["id"]]


def test_erasing_an_unknown_submission_is_not_found(client, fresh_form):
    assert client.post(f"/submissions/{uuid.uuid4()}/erase",
                       data={"csrf_token": fresh_form()["csrf_token"]}).status_code == 404


def backdate(conn, ids, days):
    with conn, conn.cursor() as cur:
        cur.execute("UPDATE cats SET stored_at = now() - make_interval(days => %s) "
                    "WHERE submission_id = ANY (%s::uuid[])", (days, ids))


def test_retention_runs_on_rq_cron_and_the_worker_erases(app, env, owner, redis, run_worker, rows):
    """RQ's cron scheduler enqueues the retention job in a form the (JSON) worker runs."""
    from worker.config import Config
    from worker.retention import scheduler

    old, recent = submission(name="Old Oswald"), submission()
    assert app.extensions["submission_queue"].enqueue(old)
    run_worker()  # its finished store job kept for JOB_RESULT_TTL, answers included
    assert redis_holding(redis, "Old Oswald") == [f"rq:job:{old['id']}"]
    jobs.store_submissions([recent], Cap(redis, "submissions"))
    backdate(owner(), [old["id"]], 8)
    cron = scheduler(Config.from_env({**env, "RETENTION_DAYS": "7"}), redis)
    assert [job.kwargs for job in cron.enqueue_jobs()] == [{"days": 7}]  # due at start
    assert cron.enqueue_jobs() == []  # then once per RETENTION_INTERVAL
    run_worker()
    assert [r["submission_id"] for r in rows()] == [recent["id"]]
    assert tombstones(owner()) == [old["id"]]
    assert store_job_gone(redis, old["id"], "Old Oswald")
    assert scheduler(Config.from_env(env), redis).enqueue_jobs() == []  # unset: keep forever


def test_retention_days_must_be_a_positive_number(env):
    from worker.config import Config
    for bad in ("0", "-3"):
        with pytest.raises(ValueError, match="RETENTION_DAYS"):
            Config.from_env({"RETENTION_DAYS": bad})
    assert Config.from_env({}).retention_days is None


def test_the_auditor_erases_by_id_with_the_command(app, env, owner, redis, rows, capsys):
    from worker.erase import main
    stored, never = submission(), submission(name="Queued Quincy")
    jobs.store_submission(stored)
    assert app.extensions["submission_queue"].enqueue(never)  # its store still queued
    assert main([stored["id"], never["id"]]) == 0
    out = capsys.readouterr().out
    assert f"{stored['id']} erased" in out and f"{never['id']}: no stored answer" in out
    assert rows() == []
    assert tombstones(owner()) == sorted([stored["id"], never["id"]])
    assert queue(redis).job_ids == [] and store_job_gone(redis, never["id"], "Queued Quincy")
    assert jobs.store_submission(never) == {"inserted": False}


def test_the_retention_probe_sees_the_schedulers_heartbeat(env, redis):
    from worker.config import Config
    from worker.retention import check, scheduler
    assert check(redis) == 1  # not started
    cron = scheduler(Config.from_env(env), redis)
    cron.register_birth()
    cron.heartbeat()
    assert check(redis) == 0


def test_an_erased_id_is_refused_for_as_long_as_a_form_token_for_it_lives(
        app, client, post_form, fresh_form, redis, run_worker, rows):
    hidden = fresh_form()
    sid = hidden["submission_id"]
    assert post_form(hidden, name="Back Button Bella").status_code == 303
    run_worker()
    assert erase_from_receipt(client, sid).status_code == 303
    run_worker()
    mark_ttl = redis.ttl(erased_key(sid))
    assert app.config["WTF_CSRF_TIME_LIMIT"] < mark_ttl <= app.config["WTF_CSRF_TIME_LIMIT"] + 3600
    # Long after the erase job's result expired (JOB_RESULT_TTL), the form sent again:
    redis.delete(f"rq:job:erase-{sid}")
    again = post_form(hidden, name="Back Button Bella")
    assert again.status_code == 410 and "This answer was erased" in again.get_data(as_text=True)
    assert store_job_gone(redis, sid, "Back Button Bella")


def test_a_retry_the_scheduler_writes_back_after_the_erase_goes_at_the_second_pass(
        app, env, owner, redis, rows, monkeypatch):
    """RQ's scheduler reads a due retry, then saves it whole onto the queue,
    with no WATCH: an erase in between deletes a job that then comes back."""
    import rq.scheduler
    from rq.scheduler import RQScheduler

    sub = submission(name="Scheduled Sally")
    sid = sub["id"]
    q = queue(redis)
    q.enqueue_at(datetime.now(timezone.utc), STORE_JOB, submission=sub, job_id=sid)  # a retry, due now
    scheduler = RQScheduler([q], connection=redis, serializer=JSONSerializer)
    assert scheduler.acquire_locks()
    fetch_many = Job.fetch_many

    def fetched_then_erased(*args, **kwargs):
        jobs_read = fetch_many(*args, **kwargs)
        assert erasure.erase_submission(sid, redis) == {"erased": False}
        assert redis_holding(redis, "Scheduled Sally") == []  # the first pass deleted it...
        return jobs_read
    monkeypatch.setattr(rq.scheduler.Job, "fetch_many", fetched_then_erased)
    scheduler.enqueue_scheduled_jobs()
    monkeypatch.undo()
    scheduler.release_locks()
    assert redis_holding(redis, "Scheduled Sally") == [f"rq:job:{sid}"]  # ...and the scheduler wrote it back
    # Not yet due: the second pass waits for a store that may be running to end.
    assert erasure.run_second_passes(redis) == 0 and redis_holding(redis, "Scheduled Sally")
    due = time.time() + app.config["JOB_TIMEOUT"] + erasure.SECOND_PASS_MARGIN_S + 1
    assert erasure.run_second_passes(redis, now=due) == 1
    assert store_job_gone(redis, sid, "Scheduled Sally") and q.job_ids == []
    assert redis.zcard(erasure.SECOND_PASS_KEY) == 0


def test_the_second_pass_waits_for_a_running_store_then_deletes_its_result(app, owner, redis, rows):
    sub = submission(name="Running Rita")
    assert app.extensions["submission_queue"].enqueue(sub)
    job = Job.fetch(sub["id"], connection=redis, serializer=JSONSerializer)
    job.set_status(JobStatus.STARTED)
    erasure.erase_submission(sub["id"], redis)
    due = time.time() + app.config["JOB_TIMEOUT"] + erasure.SECOND_PASS_MARGIN_S + 1
    assert erasure.run_second_passes(redis, now=due) == 0  # still running: looked at again later
    assert redis.zcard(erasure.SECOND_PASS_KEY) == 1
    job.set_status(JobStatus.FINISHED)  # it ended, storing nothing, its answers kept as its result
    later = due + app.config["JOB_TIMEOUT"] + erasure.SECOND_PASS_MARGIN_S + 1
    assert erasure.run_second_passes(redis, now=later) == 1
    assert store_job_gone(redis, sub["id"], "Running Rita")


def test_an_erase_that_failed_for_good_can_be_asked_for_again(
        app, client, owner, post_form, fresh_form, redis, run_worker, rows, monkeypatch):
    hidden = fresh_form()
    sid = hidden["submission_id"]
    assert post_form(hidden).status_code == 303
    run_worker()
    conn = owner()
    conn.autocommit = True
    with conn.cursor() as cur:  # an erase that cannot succeed by waiting (not an outage)
        cur.execute("ALTER FUNCTION erase_submissions(uuid[], text) RENAME TO erase_submissions_away")
    try:
        app.extensions["submission_queue"].retry = Retry(max=1)  # at once, once
        assert erase_from_receipt(client, sid).status_code == 303
        run_worker()
    finally:
        with conn.cursor() as cur:
            cur.execute("ALTER FUNCTION erase_submissions_away(uuid[], text) RENAME TO erase_submissions")
    assert queue(redis).failed_job_registry.get_job_ids() == [f"erase-{sid}"]
    page = client.get(f"/submissions/{sid}").get_data(as_text=True)
    assert 'data-state="erase_failed"' in page and "Erasing it failed" in page and "Ask again to erase it" in page
    assert len(rows()) == 1
    assert erase_from_receipt(client, sid).status_code == 303
    assert queue(redis).job_ids == [f"erase-{sid}"] and queue(redis).failed_job_registry.count == 0
    run_worker()
    assert rows() == []
    assert client.get(f"/submissions/{sid}.json").get_json()["state"] == "erased"
