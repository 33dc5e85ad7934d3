"""One round of every scenario; bench/__main__.py runs several and takes medians.

Every scenario ends by checking that each accepted post (a 303 answer) is
exactly one row, and raises BenchFailure otherwise."""

import time

from rq.registry import FailedJobRegistry
from rq.serializers import JSONSerializer

from . import limits, load
from .cpu import Meter

# Where a drain's backlog waits while its workers start, so that their
# start-up is neither timed nor counted in the capacity model's CPU.
HELD_QUEUE = "bench:held-queue"
QUEUE_KEY = "rq:queue:submissions"

DRAIN_WORKERS = (1, 2, 4)


class BenchFailure(AssertionError):
    pass


def wait_stored(stack, expected, timeout):
    """Seconds until the table holds `expected` rows; fails on more, or on timeout."""
    start = time.monotonic()
    while True:
        n = stack.row_count()
        if n == expected:
            return time.monotonic() - start
        if n > expected:
            raise BenchFailure(f"{n} rows for {expected} accepted submissions: duplicates or uncounted posts")
        if time.monotonic() - start > timeout:
            raise BenchFailure(f"only {n} of {expected} accepted submissions stored after {timeout}s")
        time.sleep(0.05)


def check_exactly_once(stack, result, expect_rows=True):
    """Each accepted submission of this load is exactly one row, and nothing else is."""
    stats = stack.row_stats()
    expected = result["accepted"] if expect_rows else 0
    if stats["rows"] != expected or stats["distinct"] != stats["rows"]:
        raise BenchFailure(f"{stats['rows']} rows ({stats['distinct']} distinct) for {expected} accepted posts")
    if expect_rows:
        mine = stack.sql(f"SELECT count(*) FROM cats WHERE submission_id::text LIKE '{result['nonce'][:8]}%'",
                         fetch=True)[0][0]
        if mine != expected:
            raise BenchFailure(f"{expected - mine} rows are not from this round's posts")
    failed = FailedJobRegistry("submissions", connection=stack.redis, serializer=JSONSerializer).count
    if failed:
        raise BenchFailure(f"{failed} jobs in RQ's failed registry")
    if result["accepted"] != result["answered"] or result["errors"]["timeout"]:
        raise BenchFailure(f"not every post was accepted: {result['statuses']} errors {result['errors']}")
    return stats


def web_only(result):
    return {k: result[k] for k in ("accepted", "rate", "p50_ms", "p99_ms")}


class Round:
    def __init__(self, stack, opts, log):
        self.stack = stack
        self.o = opts
        self.log = log
        self.out = {}

    def post(self, **kw):
        kw.setdefault("seconds", self.o.duration)
        return load.post(self.stack.web_url, connections=self.o.connections, **kw)

    STEPS = ("machine_limits", "web_without_queue", "naive", "backlog_and_drains", "queued_pipeline",
             "end_to_end", "outage")

    def run(self):
        for step in (getattr(self, name) for name in self.STEPS):
            if self.o.only and step.__name__ not in self.o.only:
                continue
            self.log(f"  {step.__name__}")
            step()
        self.stack.stop_web()
        return self.out

    # (a) the machine's limits
    def machine_limits(self):
        s = self.stack
        self.out["redis"] = limits.redis_lists(s.redis_server.port, self.o.redis_requests)
        self.out["pg_1"] = limits.pg_inserts(s, 1, self.o.pg_seconds)
        self.out["pg_8"] = limits.pg_inserts(s, 8, self.o.pg_seconds)

    def web_without_queue(self):
        s = self.stack
        s.reset()
        s.start_web("without_queue")
        r = self.post()
        check_exactly_once(s, r, expect_rows=False)
        if s.queued():
            raise BenchFailure("the web without enqueuing queued jobs")
        self.out["web_none"] = web_only(r)

    # (b) the naive design, healthy and slow
    def naive(self):
        s = self.stack
        s.start_web("naive")
        for label, slow in (("naive_healthy", False), ("naive_slow", True)):
            s.reset()
            s.slow_database(slow)
            try:
                r = self.post()
            finally:
                s.slow_database(False)
            check_exactly_once(s, r)
            self.out[label] = web_only(r)

    # The web (queue mode, no workers) fills a backlog; workers drain it.
    def backlog_and_drains(self):
        s = self.stack
        meter = Meter(s)
        s.reset()
        s.start_web("queue")
        before = s.used_memory()
        web_before = meter.sample(web=True)
        r = self.post(seconds=self.o.fill_seconds, max_requests=self.o.backlog)
        web_after = meter.sample(web=True)
        after = s.used_memory()
        if s.queued() != r["accepted"]:
            raise BenchFailure(f"{s.queued()} jobs queued for {r['accepted']} accepted posts")
        self.out["web_queue"] = web_only(r)
        self.out["redis_bytes_per_submission"] = (after - before) / r["accepted"]
        # The enqueue's cost: the web's CPU and Redis's, over the posts only.
        enqueue = meter.per_submission(web_before, web_after, r["accepted"])
        snapshot = snapshot_redis(s.redis)
        self.out["drains"] = {}
        worker_rss = []
        for n in DRAIN_WORKERS:
            s.sql("TRUNCATE answers.cats")
            restore_redis(s.redis, snapshot, hold=(QUEUE_KEY, HELD_QUEUE))
            s.start_workers(n)
            s.wait_workers_ready()
            cpu_before = meter.sample(workers=True)
            s.redis.rename(HELD_QUEUE, QUEUE_KEY)  # wakes the workers blocked on the empty queue
            seconds = wait_stored(s, r["accepted"], self.o.drain_timeout)
            cpu_after = meter.sample(workers=True)
            worker_rss += s.worker_peak_rss_mb()
            s.stop_workers()
            stats = check_exactly_once(s, r)
            self.out["drains"][n] = {
                "backlog": r["accepted"],
                # From releasing the backlog to already started workers until
                # the last row.  Not stored_at's span: a batch's rows share
                # one transaction's now(), so that span misses a batch.
                "drain_s": seconds,
                "rows_per_s": stats["rows"] / seconds if seconds else 0.0,
                # What each stored submission cost: workers, PostgreSQL, Redis.
                "cost": meter.per_submission(cpu_before, cpu_after, r["accepted"]),
                # Finished jobs stay in Redis for JOB_RESULT_TTL (the receipt reads them).
                "redis_bytes_finished": (s.used_memory() - before) / r["accepted"],
            }
        self.out["worker_peak_rss_mb"] = max(worker_rss)
        self.out["enqueue_cost"] = enqueue

    # (b) ours, healthy and slow, at full load with the workers running
    def queued_pipeline(self):
        s = self.stack
        s.ensure_web("queue")
        for label, slow in (("queued_healthy", False), ("queued_slow", True)):
            s.reset()
            s.start_workers(self.o.workers)
            s.wait_workers_ready()
            s.slow_database(slow)
            try:
                r = self.post()
                # Rows already stored when the last post was answered: do the
                # workers keep up, or does a backlog build during the round?
                stored_at_end = s.row_count()
            finally:
                s.slow_database(False)
            wait_stored(s, r["accepted"], self.o.drain_timeout)
            s.stop_workers()
            check_exactly_once(s, r)
            self.out[label] = {**web_only(r), "stored_at_end": stored_at_end,
                               "backlog_at_end": r["accepted"] - stored_at_end}
        self.out["web_peak_rss_mb"] = s.web_peak_rss_mb()

    # End to end, at an offered rate the workers and the web keep up with.
    def end_to_end(self):
        s = self.stack
        s.ensure_web("queue")
        s.reset()
        s.start_workers(self.o.workers)
        s.wait_workers_ready()
        # Batched workers drain faster than the web accepts: half the slower of the two.
        target = (0.5 * min(self.out["drains"][self.o.workers]["rows_per_s"], self.out["web_queue"]["rate"])
                  if "drains" in self.out else 100)
        connections = 4
        delay_ms = max(1, int(1000 * connections / target))
        r = load.post(s.web_url, self.o.duration, connections, delay_ms=delay_ms)
        wait_stored(s, r["accepted"], self.o.drain_timeout)
        s.stop_workers()
        stats = check_exactly_once(s, r)
        self.out["e2e"] = {"offered_rate": r["rate"], "p50_ms": stats["e2e_p50_ms"], "p99_ms": stats["e2e_p99_ms"]}

    # (c) PostgreSQL down for a while in the middle of a round
    def outage(self):
        s = self.stack
        s.ensure_web("queue")
        s.reset()
        s.start_workers(self.o.workers)
        s.wait_workers_ready()
        s.pg.stop()
        try:
            r = self.post(seconds=self.o.outage_seconds)
        finally:
            s.pg.start()
        # Jobs that failed while it was down come back through RQ's retry back-off.
        catch_up = wait_stored(s, r["accepted"], self.o.drain_timeout + 120)
        s.stop_workers()
        check_exactly_once(s, r)
        self.out["outage"] = {**web_only(r), "catch_up_s": catch_up}


def snapshot_redis(conn):
    keys = list(conn.scan_iter(count=1000))
    pipe = conn.pipeline(transaction=False)
    for key in keys:
        pipe.pttl(key)
        pipe.dump(key)
    values = pipe.execute()
    return [(key, max(values[2 * i], 0), values[2 * i + 1]) for i, key in enumerate(keys)]


def restore_redis(conn, snapshot, hold=None):
    """The same backlog again, for the next drain: identical jobs, identical ids.
    hold=(key, other): key is restored as other instead (renamed back later)."""
    conn.flushall()
    pipe = conn.pipeline(transaction=False)
    for key, ttl, value in snapshot:
        if hold and key.decode() == hold[0]:
            key = hold[1]
        pipe.restore(key, ttl, value, replace=True)
    pipe.execute()
