"""A submission stays small in Redis: its job hash keeps the compact
listpack encoding (hash-max-listpack-value in redis/redis.conf, used by
loopback/servers.py), even with the longest name the form accepts, and its
result, once stored, takes a small stream node."""

from web.forms import NAME_MAX


def test_queued_job_is_a_compact_hash_under_1kb(post_form, fresh_form, redis):
    hidden = fresh_form()
    assert post_form(hidden, name="W" * NAME_MAX).status_code == 303
    key = f"rq:job:{hidden['submission_id']}"
    assert redis.object("encoding", key) == b"listpack"
    assert redis.memory_usage(key) < 1024


def test_a_finished_jobs_result_stays_under_1kb(post_form, fresh_form, redis, run_worker):
    """RQ keeps each result in a stream of its own for JOB_RESULT_TTL; with
    Redis's default node size that was 4.7 KB per submission
    (stream-node-max-bytes in redis/redis.conf)."""
    hidden = fresh_form()
    assert post_form(hidden, name="W" * NAME_MAX).status_code == 303
    run_worker()
    key = f"rq:results:{hidden['submission_id']}"
    assert redis.type(key) == b"stream"
    assert redis.memory_usage(key) < 1024
