"""The worker heartbeats at most once a second between jobs (worker/survey_worker.py)."""

from datetime import timedelta

from rq.worker_registration import get_keys

from worker.__main__ import build_worker
from worker.config import Config
from worker.survey_worker import SurveyWorker


def test_heartbeats_are_throttled_but_never_stop(env, redis):
    worker = build_worker(Config.from_env(env), redis)
    assert isinstance(worker, SurveyWorker)
    worker.register_birth()
    try:
        stored = redis.hget(worker.key, "last_heartbeat")
        worker.heartbeat()  # within a second of the last one: skipped
        assert redis.hget(worker.key, "last_heartbeat") == stored

        worker.last_heartbeat -= timedelta(seconds=2)
        redis.expire(worker.key, 5)
        worker.heartbeat()  # a second later: sent, and the registration extended
        assert redis.hget(worker.key, "last_heartbeat") != stored
        assert redis.ttl(worker.key) > 60

        # Heartbeats with an explicit timeout (RQ's, when a job starts) always go out.
        redis.expire(worker.key, 5)
        worker.heartbeat(timeout=300)
        assert redis.ttl(worker.key) > 200
        assert worker.key in get_keys(connection=redis)
    finally:
        worker.register_death()
