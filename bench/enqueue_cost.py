"""`python -m bench.enqueue_cost`: what one enqueue costs the web, in µs.

Calls web.submissions.SubmissionQueue.enqueue in a loop against a throwaway
Redis (loopback/servers.py) on loopback and prints the median of several runs:
wall time and this process's CPU time per enqueue, and the Redis commands
each one sends (INFO commandstats).  No target: a figure to compare changes
to the enqueue with, steadier than wrk on a shared machine."""

import argparse
import statistics
import sys
import time
import uuid

from loopback.servers import RedisServer
from web import config
from web.submissions import SubmissionQueue


def submission():
    return {"id": str(uuid.uuid4()), "name": "Pika", "coat": "tortie", "donut": "strawberry",
            "submitted_at": "2026-01-01T00:00:00+00:00"}


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.enqueue_cost", description=__doc__)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--enqueues", type=int, default=1000, help="per run")
    o = p.parse_args(argv)
    server = RedisServer()
    try:
        queue = SubmissionQueue(config.from_env({"REDIS_URL": server.url, "SECRET_KEY": "bench"}))
        for _ in range(200):  # warm up: connection, script cache, server version
            queue.enqueue(submission())
        before = queue.redis.info("commandstats")
        wall, cpu = [], []
        for _ in range(o.runs):
            batch = [submission() for _ in range(o.enqueues)]
            w, c = time.perf_counter(), time.process_time()
            for s in batch:
                queue.enqueue(s)
            wall.append((time.perf_counter() - w) / o.enqueues * 1e6)
            cpu.append((time.process_time() - c) / o.enqueues * 1e6)
        after = queue.redis.info("commandstats")
    finally:
        server.destroy()
    n = o.runs * o.enqueues
    commands = {k.replace("cmdstat_", ""): (v["calls"] - before.get(k, {"calls": 0})["calls"]) / n
                for k, v in after.items()}
    commands = {k: round(v, 2) for k, v in commands.items() if v >= 0.01 and k != "info"}
    print(f"enqueue: {statistics.median(wall):.0f} us wall, {statistics.median(cpu):.0f} us CPU "
          f"(median of {o.runs} x {o.enqueues}); Redis commands each: {commands}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
