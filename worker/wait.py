"""Waiting for a server: in a stack started all at once the worker and the
retention scheduler often come up before Redis and PostgreSQL, and should
wait rather than crash; after an outage they wait for the server's return."""

import logging
import time

import psycopg2
import redis

log = logging.getLogger("worker")


def wait_for(what, attempt, deadline=None):
    """Retry `attempt` with backoff, saying what it waits for; without a
    deadline it waits for as long as it takes."""
    delay = 0.2
    while True:
        try:
            return attempt()
        except (redis.RedisError, psycopg2.OperationalError) as exc:
            if deadline is not None and time.monotonic() > deadline:
                raise
            log.warning("waiting for %s: %s", what, str(exc).strip())
            time.sleep(delay)
            delay = min(delay * 2, 5)
