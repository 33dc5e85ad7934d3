"""Redis down: the visitor gets a friendly 503 with their answers kept, the
web reports not ready, and submissions flow again (to a worker that survived
the outage) once Redis is back.  Redis restarted or crashed: what was queued
before is still processed, thanks to its append-only file."""

import re
import sys
import time

import pytest
from rq import Worker

from tests.faults.conftest import Process, queue, redis_down, submission
from tests.servers import wait_until


def test_redis_down_gives_a_friendly_503_and_recovers(
        redis_server, start_worker, client, post_form, fresh_form, stored_ids):
    worker = start_worker()
    hidden = fresh_form()
    with redis_down(redis_server):
        response = post_form(hidden, name="Biscuit", coat="calico", donut="maple")
        assert response.status_code == 503
        html = response.get_data(as_text=True)
        assert "briefly unavailable" in html
        # What the visitor typed is still in the form, ready to send again.
        assert 'value="Biscuit"' in html
        assert re.search(r'<input checked [^>]*value="calico">', html)
        assert re.search(r'<input checked [^>]*value="maple">', html)
        assert hidden["submission_id"] in html
        assert "Traceback" not in html and "redis" not in html.lower()

        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.get_json()["status"] == "unavailable"
        assert client.get("/healthz").status_code == 200  # alive, just not ready
        # The worker notices the outage and keeps trying, rather than quitting.
        wait_until(lambda: worker.log().count("could not connect to Redis") >= 2, 30,
                   "the worker to retry Redis twice", interval=0.2)

    assert stored_ids() == []
    assert client.get("/readyz").status_code == 200
    # The same form, sent again, goes through and is stored by the worker that lived through it.
    assert post_form(hidden, name="Biscuit", coat="calico", donut="maple").status_code == 303
    wait_until(lambda: stored_ids() == [hidden["submission_id"]], 60, "the row after the outage",
               interval=0.2)
    assert worker.alive(), worker.log()[-3000:]


@pytest.mark.parametrize("how", ["restart", "crash"])
def test_jobs_queued_before_a_redis_restart_are_processed(
        how, redis_server, redis_restored, start_worker, post_form, fresh_form, redis, stored_ids):
    forms = [fresh_form() for _ in range(10)]
    for hidden in forms:
        assert post_form(hidden).status_code == 303
    assert queue(redis).count == 10

    if how == "restart":
        redis_server.stop()        # SIGTERM: an operator's restart
    else:
        redis_server.proc.kill()   # SIGKILL: a crash; Redis wrote the AOF before answering, so the kernel has every write
        redis_server.proc.wait(30)
    redis_server.start()

    redis.connection_pool.disconnect()
    assert queue(redis).count == 10
    start_worker()
    wait_until(lambda: len(stored_ids()) == 10, 60, "the queued jobs to be stored", interval=0.2)
    assert sorted(stored_ids()) == sorted(h["submission_id"] for h in forms)


def test_worker_waits_for_redis_past_its_startup_timeout_after_losing_it_mid_job(
        app, fault_env, processes, tmp_path, redis_server, redis_restored, row_lock, waiting_on_lock, redis,
        stored_ids):
    # `python -m worker` with a startup timeout of 1 s: an outage that begins
    # mid-job must not end the worker 1 s later (it used to).
    main = "import sys; from worker.__main__ import main; sys.exit(main(startup_timeout=1))"
    worker = Process("worker", [sys.executable, "-c", main], fault_env, tmp_path / "worker.log")
    processes.append(worker)
    wait_until(lambda: any(w.pid == worker.pid for w in Worker.all(connection=redis)), 60, "the worker")
    item = submission(name="Outage")
    lock = row_lock(item["id"])
    assert app.extensions["submission_queue"].enqueue(item)
    wait_until(lambda: waiting_on_lock(1), 30, "the worker to be inside its job")

    redis_server.stop()
    try:
        lock.rollback()  # the insert commits; the worker cannot tell RQ
        wait_until(lambda: "waiting for redis" in worker.log(), 30, "the worker to wait for Redis")
        time.sleep(5)  # five times its startup timeout
        assert worker.alive(), worker.log()[-3000:]
    finally:
        redis_server.start()

    # The same process works on once Redis is back.
    later = submission(name="After")
    assert app.extensions["submission_queue"].enqueue(later)
    wait_until(lambda: later["id"] in stored_ids(), 60, "a job queued after the outage", interval=0.2)
    assert worker.alive()
