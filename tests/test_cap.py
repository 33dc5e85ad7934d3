"""MAX_RESPONSES over months, not minutes (submission/cap.py): Redis keeps
nothing per stored answer, the count survives Redis losing its data, a
post counts and queues in one step or not at all, and one page load
is good for one answer only (web/bots.py)."""

import os
import shutil
import signal
import time
import uuid

import pytest

from submission.cap import UNQUEUED_AFTER_S, Cap
from tests.conftest import hidden_fields, redis_holding
from tests.scrape import value
from tests.servers import RedisServer
from tests.test_metrics import REJECTED, scrape
from web import bots, create_app
from worker import jobs

ANSWERS = {"name": "Rex", "coat": "tabby", "donut": "glazed"}


@pytest.fixture
def make_client(env, monkeypatch):
    def make(**settings):
        for key, setting in settings.items():
            monkeypatch.setenv(key, str(setting))
        app = create_app({"TESTING": True})
        return app, app.test_client()
    return make


def post(client, **fields):
    form = hidden_fields(client.get("/").get_data(as_text=True))
    return client.post("/", data={**form, **ANSWERS, **fields}), form


def cap(redis):
    return Cap(redis, "submissions")


def test_without_a_cap_redis_keeps_nothing_of_a_stored_answer(make_client, redis, run_worker, rows):
    _, client = make_client(JOB_RESULT_TTL="1")
    ids = []
    for _ in range(3):
        response, form = post(client)
        assert response.status_code == 303
        ids.append(form["submission_id"])
    run_worker()
    assert len(rows()) == 3
    time.sleep(1.1)  # JOB_RESULT_TTL; then the worker's registry cleaning, as at every start
    run_worker()
    assert [redis_holding(redis, sid) for sid in ids] == [[], [], []]


def test_with_a_cap_redis_holds_only_what_waits(make_client, redis, run_worker, rows):
    _, client = make_client(MAX_RESPONSES="10", JOB_RESULT_TTL="1")
    for _ in range(3):
        assert post(client)[0].status_code == 303
    assert redis.zcard(cap(redis).pending_key) == 3 and cap(redis).taken() == 3
    run_worker()
    # Stored: PostgreSQL counts them now, and Redis holds one number for all three.
    assert redis.zcard(cap(redis).pending_key) == 0 and int(redis.get(cap(redis).settled_key)) == 3
    assert cap(redis).taken() == 3
    time.sleep(1.1)
    run_worker()
    assert sorted(k.decode() for k in redis.keys("survey:*")) == [cap(redis).settled_key]


@pytest.fixture
def own_redis(env, tmp_path, monkeypatch):
    """A Redis of this test's own, which it can restart with no data."""
    server = RedisServer(base_dir=tmp_path)
    monkeypatch.setenv("REDIS_URL", server.url)
    yield server
    server.destroy()


def restart_empty(server):
    server.stop()
    for path in server.tmp.iterdir():
        if path.name != "log":
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    server.start()


def test_the_cap_holds_exactly_when_redis_restarts_empty(make_client, own_redis, run_worker, rows, env):
    import redis as redis_lib

    _, client = make_client(MAX_RESPONSES="4")
    for _ in range(3):
        assert post(client)[0].status_code == 303
    worker_redis = redis_lib.Redis.from_url(own_redis.url)
    from worker.__main__ import build_worker
    from worker.config import Config as WorkerConfig
    build_worker(WorkerConfig.from_env({**env, "REDIS_URL": own_redis.url}), worker_redis).work(
        burst=True, with_scheduler=False)
    assert len(rows()) == 3
    forms = [hidden_fields(client.get("/").get_data(as_text=True)) for _ in range(4)]
    restart_empty(own_redis)
    # The same web, its count gone with Redis's data: one more answer, then closed.
    statuses = [client.post("/", data={**form, **ANSWERS}).status_code for form in forms]
    assert statuses == [303, 410, 410, 410]
    # A web started afterwards reads the same count.
    _, other = make_client(MAX_RESPONSES="4")
    assert "This survey is closed." in other.get("/").get_data(as_text=True)


def test_a_lost_count_is_rebuilt_from_postgresql_and_the_queue(make_client, redis, run_worker, rows):
    app, client = make_client(MAX_RESPONSES="4")
    assert post(client)[0].status_code == 303
    run_worker()
    assert post(client)[0].status_code == 303  # queued, not stored
    forms = [hidden_fields(client.get("/").get_data(as_text=True)) for _ in range(3)]
    # A failover to a replica that had the queue but not the count.
    redis.delete(cap(redis).settled_key, cap(redis).pending_key)
    assert [client.post("/", data={**f, **ANSWERS}).status_code for f in forms] == [303, 303, 410]
    run_worker()
    assert len(rows()) == 4 and cap(redis).taken() == 4


def payload_of(app, sid):
    from datetime import datetime, timezone

    from werkzeug.datastructures import MultiDict
    with app.test_request_context():
        form = app.extensions["survey_forms"][app.config["SURVEY"].path](MultiDict({**ANSWERS, "submission_id": sid}))
        assert form.validate()
        return form.submission(datetime.now(timezone.utc))


def test_a_post_counts_and_queues_in_one_step_or_not_at_all(make_client, redis):
    """A post whose reply was lost is queued and counted: sent again, it is
    the same answer, and frees no place for someone else.  A post refused
    (the cap, the queue's depth) leaves neither a count nor a job."""
    app, client = make_client(MAX_RESPONSES="2")
    queue = app.extensions["submission_queue"]
    first, second, third = (payload_of(app, str(uuid.uuid4())) for _ in range(3))
    assert queue.take(first, cap=2) == "queued"
    assert queue.take(first, cap=2) == "duplicate"
    assert queue.accepted() == 1
    assert queue.take(second, cap=2, max_depth=1) == "queue_full"
    assert queue.accepted() == 1 and not redis.exists(f"rq:job:{second['id']}")
    assert queue.take(second, cap=2) == "queued"
    assert queue.take(third, cap=2) == "full"
    assert queue.accepted() == 2 and not redis.exists(f"rq:job:{third['id']}")
    assert queue.queue.job_ids == [first["id"], second["id"]]


def test_the_worker_gives_back_a_count_whose_job_is_gone_and_settles_one_lost(make_client, redis, rows):
    app, client = make_client(MAX_RESPONSES="5")
    queue = app.extensions["submission_queue"]
    assert post(client)[0].status_code == 303
    # A count whose job is gone (it failed for good and expired, or was deleted).
    ghost = payload_of(app, str(uuid.uuid4()))
    assert queue.take(ghost, cap=5) == "queued"
    redis.delete(f"rq:job:{ghost['id']}")
    redis.lrem(queue.queue.key, 1, ghost["id"])
    assert queue.accepted() == 2
    # A store whose settle was lost (the worker died after its COMMIT).
    stored = {"id": str(uuid.uuid4()), "name": "Tom", "coat": "grey", "donut": "maple",
              "submitted_at": "2026-01-01T00:00:00+00:00", "version": 1}
    assert queue.take(stored, cap=5) == "queued"
    jobs.store_submission(stored)  # outside a job: nothing settled
    redis.delete(f"rq:job:{stored['id']}")
    redis.lrem(queue.queue.key, 1, stored["id"])
    assert queue.accepted() == 3
    later = time.time() + UNQUEUED_AFTER_S + 1
    assert cap(redis).reconcile(jobs.held_by_database, now=later) == (1, 1)
    # The posted one waits in the queue: still counted.  PostgreSQL's row is counted once.
    assert queue.accepted() == 2


def test_one_page_load_is_good_for_one_answer(make_client, redis, run_worker, rows):
    _, client = make_client(MIN_FILL_SECONDS="0.2")
    form = hidden_fields(client.get("/").get_data(as_text=True))
    time.sleep(0.25)
    before = value(scrape(client), REJECTED, field="form", reason="replayed") or 0
    statuses = [client.post("/", data={**form, **ANSWERS, "submission_id": str(uuid.uuid4())}).status_code
                for _ in range(99)]
    statuses.append(client.post("/", data={**form, **ANSWERS}).status_code)
    assert statuses == [422] * 99 + [303]
    run_worker()
    assert [r["submission_id"] for r in rows()] == [form["submission_id"]]
    assert value(scrape(client), REJECTED, field="form", reason="replayed") == before + 99


def test_a_replayed_token_gets_the_too_fast_answer_and_a_fresh_form(make_client):
    _, client = make_client(MIN_FILL_SECONDS="0.2")
    form = hidden_fields(client.get("/").get_data(as_text=True))
    time.sleep(0.25)
    replayed = client.post("/", data={**form, **ANSWERS, "submission_id": str(uuid.uuid4())})
    html = replayed.get_data(as_text=True)
    assert "sooner than anyone could answer" in html and 'value="Rex"' in html
    again = hidden_fields(html)
    # A new id with its own token: sent again, it is taken.
    assert again["submission_id"] not in (form["submission_id"],)
    time.sleep(0.25)
    assert client.post("/", data={**again, **ANSWERS}).status_code == 303


def test_an_expired_token_is_refused_and_the_form_comes_back_fresh(make_client, env):
    app, client = make_client(MIN_FILL_SECONDS="0.2")
    form = hidden_fields(client.get("/").get_data(as_text=True))
    day_old = time.time() - app.config["WTF_CSRF_TIME_LIMIT"] - 10
    old = bots.form_token(app.config, form["submission_id"], started=day_old)
    before = value(scrape(client), REJECTED, field="form", reason="expired") or 0
    response = client.post("/", data={**form, **ANSWERS, "form_started": old})
    assert response.status_code == 422 and "This form expired" in response.get_data(as_text=True)
    assert value(scrape(client), REJECTED, field="form", reason="expired") == before + 1
    again = hidden_fields(response.get_data(as_text=True))
    assert again["submission_id"] != form["submission_id"]
    time.sleep(0.25)
    assert client.post("/", data={**again, **ANSWERS}).status_code == 303


def test_with_a_cap_the_form_renders_while_redis_is_frozen(make_client, own_redis):
    _, client = make_client(MAX_RESPONSES="10")
    assert client.get("/").status_code == 200
    os.kill(own_redis.proc.pid, signal.SIGSTOP)
    try:
        times = []
        for _ in range(5):
            started = time.monotonic()
            response = client.get("/")
            times.append(time.monotonic() - started)
            assert response.status_code == 200 and "<form" in response.get_data(as_text=True)
        # One short wait on the frozen Redis, then none while it stays away.
        assert times[0] < 2 and max(times[1:]) < 0.5, times
    finally:
        os.kill(own_redis.proc.pid, signal.SIGCONT)


def test_a_post_while_redis_is_frozen_gets_the_unavailable_page_and_works_after(make_client, own_redis):
    _, client = make_client(MAX_RESPONSES="10")
    form = hidden_fields(client.get("/").get_data(as_text=True))
    os.kill(own_redis.proc.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        frozen = client.post("/", data={**form, **ANSWERS})
        waited = time.monotonic() - started
    finally:
        os.kill(own_redis.proc.pid, signal.SIGCONT)
    # Given up on after the web's reply timeout (redisbounds/), not hung.
    assert frozen.status_code == 503 and 'value="Rex"' in frozen.get_data(as_text=True) and waited < 10, waited
    assert client.post("/", data={**form, **ANSWERS}).status_code == 303
