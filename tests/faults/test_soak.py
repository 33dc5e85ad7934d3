"""Months of answers, in a minute or two: Redis holds what waits, never what
was stored (submission/cap.py).  After 50,000 accepted posts, the queue
drained and JOB_RESULT_TTL passed, Redis's used_memory is back within a few
MB of where it started, with a cap set (whose count is exact throughout)."""

import multiprocessing
import os
import time
import uuid

import pytest

from submission.cap import Cap
from tests.conftest import hidden_fields
from web import create_app

POSTS = 50_000
ROUNDS = 10
ANSWERS = {"name": "Soak", "coat": "tabby", "donut": "glazed"}


@pytest.fixture
def soak_app(env, monkeypatch):
    for key, value in {"MAX_RESPONSES": str(10 * POSTS), "JOB_RESULT_TTL": "2"}.items():
        monkeypatch.setenv(key, value)
    return create_app({"TESTING": True})


# The posts of a round, shared by this many forked processes (the machine's
# cores): the web's CPU, not Redis, is what a round waits for.
POSTERS = max(1, min(2, os.cpu_count() or 1))
_client = None


def _post(args):
    csrf, count = args
    for _ in range(count):
        response = _client.post("/", data={"csrf_token": csrf, "submission_id": str(uuid.uuid4()), **ANSWERS})
        if response.status_code != 303:
            return response.get_data(as_text=True)[:500]
    return None


def used_memory(redis):
    return redis.info("memory")["used_memory"]


def test_redis_memory_returns_to_where_it_started_after_50000_answers(soak_app, redis, run_worker, rows):
    global _client
    _client = soak_app.test_client()
    csrf = hidden_fields(_client.get("/").get_data(as_text=True))["csrf_token"]
    run_worker()  # the worker's own keys (its registration, its queue's registries) exist before we measure
    before = used_memory(redis)
    peak = before
    share = POSTS // ROUNDS // POSTERS
    # Forked after the app is made: each child's Redis pool reconnects (redis-py checks the pid).
    with multiprocessing.get_context("fork").Pool(POSTERS) as posters:
        for _ in range(ROUNDS):
            assert posters.map(_post, [(csrf, share)] * POSTERS) == [None] * POSTERS
            peak = max(peak, used_memory(redis))
            run_worker()
    assert len(rows()) == POSTS
    cap = Cap(redis, "submissions")
    assert cap.taken() == POSTS and redis.zcard(cap.pending_key) == 0
    time.sleep(2.5)  # JOB_RESULT_TTL
    run_worker()  # the worker's registry cleaning, as it does at every start and maintenance
    after = used_memory(redis)
    print(f"Redis used_memory: {before / 2**20:.1f} MB before, {peak / 2**20:.1f} MB at the peak of a "
          f"round of {POSTS // ROUNDS} waiting, {after / 2**20:.1f} MB after {POSTS} answers")
    assert after - before < 3 * 2**20, (before, peak, after)
    # What is left is bounded by what waits: nothing does now.
    assert redis.dbsize() < 50, sorted(k.decode() for k in redis.keys("*"))
