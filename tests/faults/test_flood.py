"""A flood of posts through the proxy, from one client address and then from
200, against a small QUEUE_MAX_DEPTH: the queue stays bounded, every accepted
post is stored exactly once, every other one is refused (429 from the rate
limit, 503 from the full queue) and stores nothing, and pages keep answering."""

import collections
import http.client
import itertools
import threading
import time
import uuid

import pytest

from tests.frontend import FORM_HEADERS, Front, percentile, post_body, request
from tests.servers import wait_until

FLOOD = 20_000
QUEUE_MAX_DEPTH = 300
MAXMEMORY = 256 * 1024 * 1024  # redis/redis.conf
MANY_ADDRESSES = [f"127.0.0.{i}" for i in range(2, 202)]
VISITOR = "127.0.0.250"
WEB_CONCURRENCY = 4  # tests/frontend.py


@pytest.fixture(scope="module")
def front(pg_server, tmp_path_factory):
    front = Front(pg_server, tmp_path_factory.mktemp("flood"), QUEUE_MAX_DEPTH=str(QUEUE_MAX_DEPTH))
    try:
        yield front.start()
    finally:
        front.destroy()


class Watch:
    """A visitor loading the form every 0.1 s, and Redis's memory, while the flood runs."""

    def __init__(self, front):
        self.front = front
        self.pages, self.memory = [], []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.done.is_set():
            t = time.perf_counter()
            try:
                status = request(self.front.port, "GET", "/", source=VISITOR, timeout=10)[0]
            except OSError as exc:
                status = repr(exc)
            self.pages.append((status, time.perf_counter() - t))
            self.memory.append(self.front.redis.info("memory")["used_memory"])
            self.done.wait(0.1)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join(30)


def flood(front, sources, threads):
    """FLOOD posts of the form, from threads each keeping one keep-alive
    connection per source address: [(status, submission_id)]."""
    cookie, token = front.form()
    headers = {**FORM_HEADERS, "Cookie": cookie}
    numbers = itertools.count()
    results = []

    def post(conns, source, sid):
        """One post on this source's keep-alive connection: its status, or the error's repr."""
        conn = conns.get(source)
        if conn is None:
            conn = conns[source] = http.client.HTTPConnection("127.0.0.1", front.port, timeout=30,
                                                             source_address=(source, 0))
        try:
            conn.request("POST", "/", post_body(token, sid), headers)
            response = conn.getresponse()
            response.read()
        except (OSError, http.client.HTTPException) as exc:
            conns.pop(source).close()
            return repr(exc)
        if response.will_close:
            conns.pop(source).close()
        return response.status

    def client(my_sources):
        conns, answered = {}, set()  # answered: sources whose open connection has had an answer
        while (i := next(numbers)) < FLOOD:
            source = my_sources[i % len(my_sources)]
            sid = str(uuid.uuid4())
            reused = source in answered
            status = post(conns, source, sid)
            if reused and not isinstance(status, int):
                # nginx closes a keep-alive connection idle for 10 s
                # (keepalive_timeout), and a request sent just then meets a
                # closed socket; browsers send it again on a new connection,
                # and so do we, once: the same submission id, so it cannot
                # store twice.
                status = post(conns, source, sid)
            if source in conns:
                answered.add(source)
            else:
                answered.discard(source)
            results.append((status, sid))
        for conn in conns.values():
            conn.close()

    workers = [threading.Thread(target=client, args=(sources[n::threads] or sources,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return results


def check_flood(front, sources, threads, capsys, worker_paused=False):
    if worker_paused:
        # A batched worker stores thousands a second, faster than this machine
        # can post: with it paused, the flood really meets a full queue.
        front.stop("worker")
    started = time.monotonic()
    with Watch(front) as watch:
        results = flood(front, sources, threads)
    took = time.monotonic() - started
    statuses = collections.Counter(status for status, _ in results)
    page_times = [t for _, t in watch.pages]
    with capsys.disabled():
        print(f"\n{FLOOD} posts from {len(set(sources))} address(es) in {took:.1f}s ({FLOOD / took:.0f}/s): "
              f"{dict(statuses)}; GET / during the flood: {len(watch.pages)} loads, "
              f"p50 {percentile(page_times, 50) * 1000:.0f} ms, p99 {percentile(page_times, 99) * 1000:.0f} ms; "
              f"Redis used_memory max {max(watch.memory) / 2**20:.1f} MiB")

    assert len(results) == FLOOD
    assert set(statuses) <= {303, 429, 503}, statuses
    assert watch.pages and all(status == 200 for status, _ in watch.pages), collections.Counter(
        status for status, _ in watch.pages)
    assert max(watch.memory) < MAXMEMORY

    accepted = {sid for status, sid in results if status == 303}
    refused = {sid for status, sid in results if status != 303}
    if worker_paused:
        # The depth check and the enqueue are two steps, so each gunicorn
        # process may add one job past the bound, and no more.
        assert QUEUE_MAX_DEPTH <= front.redis.llen("rq:queue:submissions") <= QUEUE_MAX_DEPTH + WEB_CONCURRENCY
        front.start("worker")
    # What is accepted is in the queue (at most QUEUE_MAX_DEPTH) or stored; it drains in seconds.
    flood_ids = accepted | refused

    def drained():
        return set(front.stored_ids()) & flood_ids == accepted

    wait_until(drained, 60, "the worker to store every accepted post", interval=0.5)
    # submission_id is the table's key, so "in the table" is "exactly once"; refused posts left nothing.
    assert not set(front.stored_ids()) & refused
    assert front.redis.info("memory")["used_memory"] < MAXMEMORY
    return statuses, took


def test_a_flood_from_one_address_is_rate_limited(front, capsys):
    statuses, took = check_flood(front, ["127.0.0.1"], 16, capsys)
    # 20 posts a second and a burst of 40 from one address (POST_RATE_LIMIT,
    # POST_RATE_BURST): no more pass than that allows over the flood's
    # length (a tenth more for nginx's millisecond accounting); the rest are refused.
    allowed = 40 + 20 * took * 1.1
    assert statuses[303] <= allowed, (statuses, took)
    assert statuses[429] >= FLOOD - allowed, (statuses, took)


def test_a_flood_from_200_addresses_fills_the_queue_and_no_further(front, capsys):
    statuses, _ = check_flood(front, MANY_ADDRESSES, 40, capsys, worker_paused=True)
    # Each address alone stays near the rate limit; the bounded queue refuses the rest.
    assert QUEUE_MAX_DEPTH <= statuses[303] <= QUEUE_MAX_DEPTH + WEB_CONCURRENCY, statuses
    assert statuses[503] > FLOOD / 2, statuses
