"""A flood of posts while PostgreSQL is down: the worker moves each job it
takes into RQ's scheduled registry for a retry, so a bound on the queue's
length alone never bites and Redis fills up.  QUEUE_MAX_DEPTH counts every
submission not yet stored (queued, held, scheduled): accepted posts stay at
the bound, the rest get 503 with their answers kept, and after the outage
every accepted answer is stored exactly once, no refused one at all."""

import collections
import threading

from tests.faults.conftest import postgres_down, queue
from tests.http import Browser
from tests.servers import wait_until

QUEUE_MAX_DEPTH = 50
WEB_CONCURRENCY = 4
POSTS = 300
THREADS = 4


def flood(port):
    """POSTS form posts from THREADS visitors: [(status, submission id, name, body)]."""
    results = []

    def visitor(n):
        browser = Browser(f"http://127.0.0.1:{port}")
        for i in range(n, POSTS, THREADS):
            name = f"Flood {i}"
            status, _, body, sid = browser.submit(name=name, coat="tabby", donut="glazed")
            results.append((status, sid, name, body))

    threads = [threading.Thread(target=visitor, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results


def test_a_flood_during_an_outage_is_bounded_by_every_waiting_submission(
        pg_server, pg_restored, start_worker, start_web, redis, stored_ids):
    start_worker()
    _, browser = start_web(QUEUE_MAX_DEPTH=str(QUEUE_MAX_DEPTH), WEB_CONCURRENCY=str(WEB_CONCURRENCY))
    port = browser.base_url.rsplit(":", 1)[1]
    with postgres_down(pg_server):
        results = flood(port)
        # Then nothing waits in the queue's list: the worker took every job and
        # scheduled its retry (a flood faster than the worker leaves them
        # queued at first, so this is waited for) ...
        q = queue(redis)
        wait_until(lambda: q.count == 0 and q.scheduled_job_registry.count > 0, 30,
                   "the worker to move the accepted jobs to the scheduled registry", interval=0.05)
        # ... where a bound on the list's length alone would take as many again.
        results += flood(port)
        statuses = collections.Counter(status for status, *_ in results)
        assert len(results) == 2 * POSTS and set(statuses) <= {303, 503}, statuses
        # Checking the depth and enqueueing are two steps: each process may pass the bound by one.
        assert QUEUE_MAX_DEPTH <= statuses[303] <= QUEUE_MAX_DEPTH + WEB_CONCURRENCY, statuses
        for status, _, name, body in results:
            if status == 503:
                assert f'value="{name}"' in body  # the visitor's answers, kept for a retry

    accepted = {sid for status, sid, *_ in results if status == 303}
    wait_until(lambda: len(stored_ids()) >= len(accepted), 90, "every accepted answer after the outage",
               interval=0.5)
    # submission_id is the table's key, so this is "each exactly once", and no refused one.
    assert sorted(stored_ids()) == sorted(accepted)
