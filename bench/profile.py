"""`python -m bench.profile`: where the web's POST and the worker's job loop
spend their time, and how many Redis commands each costs.

Samples a gunicorn worker while wrk posts (queue mode), and a worker while
it drains a backlog, with py-spy; prints the inclusive share of the frames
that matter, and Redis commands per submission from INFO commandstats."""

import argparse
import collections
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import load
from .rounds import wait_stored
from .stack import BIN, Stack, children

# Frames worth naming, matched against py-spy's "function (file)" labels.
WATCH = [
    ("web: the POST view", "submit (web/views.py"),
    ("web: form validation + CSRF", "validate (flask_wtf/form.py"),
    ("web: enqueue (web/submissions.py)", "enqueue (web/submissions.py"),
    ("web: RQ job creation + serialise", "create_job (rq/queue.py"),
    ("any: reading Redis replies", "read_response (redis/"),
    ("web: redirect + url_for", "url_for (flask/"),
    ("web: gunicorn access log", "access (gunicorn/glogging.py"),
    ("web: session cookie (open)", "open_session (flask/sessions.py"),
    ("web: CSRF check (CSRFProtect)", "protect (flask_wtf/csrf.py"),
    ("web: building the form", "__call__ (wtforms/form.py"),
    ("web: prometheus counters", "(prometheus_client/"),
    ("web: response write (gunicorn)", "write (gunicorn/util.py"),
    ("web: closing the connection (gunicorn)", "close_graceful (gunicorn/util.py"),
    ("worker: dequeue", "dequeue_job_and_maintain_ttl (rq/worker/base.py"),
    ("worker: heartbeat", "heartbeat (rq/worker/base.py"),
    ("worker: prepare execution", "prepare_execution (rq/worker/base.py"),
    ("worker: perform_job", "perform_job (rq/worker/base.py"),
    ("worker: the job (INSERT + COMMIT)", "store_submission (worker/jobs.py"),
    ("worker: handle_job_success", "handle_job_success (rq/worker/base.py"),
    ("worker: logging", "handle (logging/__init__.py"),
    ("any: redis command round trip", "execute_command (redis/client.py"),
    ("any: redis pipeline execute", "execute (redis/client.py"),
    ("any: waiting on a socket (recv)", "_read_from_socket (redis/"),
]


def spy(pids, seconds, out):
    """py-spy on each pid for `seconds`, collapsed stacks in `out`."""
    procs = []
    for i, pid in enumerate(pids):
        procs.append(subprocess.Popen([str(BIN / "py-spy"), "record", "--pid", str(pid), "--duration", str(int(seconds)),
                                       "--rate", "200", "--format", "raw", "--nonblocking",
                                       "--output", f"{out}.{i}"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    return procs


def summarise(paths, title):
    total = 0
    inclusive = collections.Counter()
    leaf = collections.Counter()
    for path in paths:
        if not Path(path).exists():
            continue
        for line in Path(path).read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            n = int(count)
            frames = stack.split(";")
            total += n
            leaf[frames[-1].split(":")[0]] += n
            seen = set()
            for label, needle in WATCH:
                if label not in seen and any(needle in f for f in frames):
                    inclusive[label] += n
                    seen.add(label)
    print(f"\n{title}: {total} samples")
    for label, _ in WATCH:
        if inclusive[label]:
            print(f"  {label:<42} {100 * inclusive[label] / total:5.1f} %")
    print("  top leaf frames (self time):")
    for frame, n in leaf.most_common(8):
        print(f"    {100 * n / total:5.1f} %  {frame[:110]}")


def commandstats(redis):
    return {k: v["calls"] for k, v in redis.info("commandstats").items()}


def diff(after, before, per):
    d = {k.replace("cmdstat_", ""): (after[k] - before.get(k, 0)) / per for k in after}
    d = {k: v for k, v in d.items() if v > 0.001}
    return sum(d.values()), dict(sorted(d.items(), key=lambda kv: -kv[1]))


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    p.add_argument("--seconds", type=float, default=8)
    p.add_argument("--backlog", type=int, default=3000)
    p.add_argument("--connections", type=int, default=10)
    o = p.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="survey-profile-"))
    stack = Stack(tmp)
    try:
        stack.start_web("queue")
        time.sleep(1)
        workers = children(stack.web.proc.pid)
        before = commandstats(stack.redis)
        spies = spy(workers, o.seconds, tmp / "web")
        r = load.post(stack.web_url, o.seconds, o.connections)
        for s in spies:
            s.wait(60)
        total, per = diff(commandstats(stack.redis), before, r["accepted"])
        summarise([tmp / f"web.{i}" for i in range(len(workers))],
                  f"web POST path, {r['rate']:.0f} posts/s accepted ({len(workers)} gunicorn workers)")
        print(f"  Redis commands per enqueue: {total:.1f} {per}")

        stack.reset()
        r = load.post(stack.web_url, 60, o.connections, max_requests=o.backlog)
        stack.start_workers(1)
        stack.wait_workers_ready()
        before = commandstats(stack.redis)
        started = stack.row_count()
        spies = spy([stack.workers[0].proc.pid], o.seconds, tmp / "worker")
        for s in spies:
            s.wait(60)
        done = stack.row_count() - started
        total, per = diff(commandstats(stack.redis), before, max(done, 1))
        summarise([tmp / "worker.0"], f"worker job loop, 1 worker, {done / o.seconds:.0f} rows/s while sampled")
        print(f"  Redis commands per job: {total:.1f} {per}")
        wait_stored(stack, r["accepted"], 300)
    finally:
        stack.destroy()
    print(f"\n(raw py-spy stacks in {tmp})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
