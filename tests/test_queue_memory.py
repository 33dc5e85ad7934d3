"""A queued submission stays small in Redis: its job hash keeps the compact
listpack encoding (hash-max-listpack-value in redis/redis.conf, used by
tests/servers.py), even with the longest name the form accepts."""

from web.forms import NAME_MAX


def test_queued_job_is_a_compact_hash_under_1kb(post_form, fresh_form, redis):
    hidden = fresh_form()
    assert post_form(hidden, name="W" * NAME_MAX).status_code == 303
    key = f"rq:job:{hidden['submission_id']}"
    assert redis.object("encoding", key) == b"listpack"
    assert redis.memory_usage(key) < 1024
