"""`make bench` (or `.venv/bin/python -m bench`): does the queue pay for itself?

Starts throwaway PostgreSQL and Redis, the web (gunicorn, web/gunicorn.conf.py)
and workers (`python -m worker`) with the runner's commands, drives the web
with wrk straight at gunicorn (not through nginx, so POST_RATE_LIMIT never
applies), and prints the medians of several rounds next to issue 12's
targets, and the capacity model (docs/capacity.md).  Then, once, the
visitors' step (bench/visits.py): full visits through nginx, as browsers
make them, for the capacity in visitors per second and the behaviour at twice
that.  Writes bench/results/<time>.json, latest.json and latest.png.
Fails (exit 1) if any accepted submission is not exactly one row."""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from web import config as web_config

from . import beside, capacity, report, visits, webhooks
from .rounds import DRAIN_WORKERS, BenchFailure, Round

# Workers in the "ours" rounds (healthy, slow, end to end, outage).  One
# batched worker stores several thousand rows/s, more than the web accepts on
# this machine, and leaves the web the other core (docs/capacity.md).
RECOMMENDED_WORKERS = 1
from .stack import Stack

RESULTS = Path(__file__).resolve().parent / "results"
# The rounds' steps, then the visitors' (run once: a search, not a median) and the webhooks'.
STEPS = Round.STEPS + ("visits", "webhooks")


def options(argv):
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3, help="rounds; each figure is their median (default 3)")
    p.add_argument("--duration", type=float, default=5, help="seconds of load per web measurement (default 5)")
    p.add_argument("--connections", type=int, default=10, help="wrk connections (default 10)")
    p.add_argument("--backlog", type=int, default=20_000, help="queued submissions to drain (default 20000)")
    p.add_argument("--fill-seconds", type=float, default=90, help="at most this long to post the backlog")
    p.add_argument("--workers", type=int, default=RECOMMENDED_WORKERS,
                   help=f"workers in the pipeline rounds, the count we recommend (default {RECOMMENDED_WORKERS})")
    p.add_argument("--web-concurrency", type=int, help="gunicorn workers (default: gunicorn.conf.py's)")
    p.add_argument("--outage-seconds", type=float, default=10, help="PostgreSQL down this long (default 10)")
    p.add_argument("--pg-seconds", type=int, default=3, help="pgbench run length (default 3)")
    p.add_argument("--redis-requests", type=int, default=100_000, help="redis-benchmark requests (default 100000)")
    p.add_argument("--drain-timeout", type=float, default=300, help="fail if a backlog takes longer")
    p.add_argument("--quick", action="store_true",
                   help="a smoke run: 1 round, tiny counts (for the test suite, not for figures)")
    p.add_argument("--only", type=lambda v: v.split(","), default=None,
                   help=f"comma-separated steps to run ({', '.join(STEPS)}); prints their medians "
                        "(visits: its figures) as JSON and writes nothing (for comparing one change)")
    p.add_argument("--visit-start-rate", type=float, default=40,
                   help="visitors/s of the visitors' search's first probe; it doubles from there (default 40)")
    p.add_argument("--visit-seconds", type=float, default=10,
                   help="seconds of arrivals per probe of the visitors' search (default 10)")
    p.add_argument("--overload-seconds", type=float, default=20,
                   help="seconds of arrivals at twice the visitors' capacity (default 20)")
    p.add_argument("--beside", metavar="REV",
                   help="run the same steps on commit REV's code first (a git worktree) and print "
                        "the visit's and the post's figures side by side (bench/beside.py)")
    p.add_argument("--no-plot", action="store_true", help="skip the PNG (matplotlib is in requirements/bench.txt)")
    p.add_argument("--out", default=str(RESULTS), help="where the JSON and the plot go (default bench/results)")
    o = p.parse_args(argv)
    if o.quick:
        o.rounds, o.duration, o.backlog, o.outage_seconds = 1, 1, 200, 2
        o.pg_seconds, o.redis_requests, o.connections, o.fill_seconds = 1, 2000, 4, 30
        # One short probe of visitors, no search: it checks only that each 303 is one row.
        o.visit_start_rate, o.visit_seconds = 5, 2
    unknown = set(o.only or ()) - set(STEPS)
    if unknown:
        p.error(f"--only: no step {', '.join(sorted(unknown))} (steps: {', '.join(STEPS)})")
    # The web refuses posts (503) once this many wait: the backlog must fit under it.
    max_depth = web_config.from_env(dict(os.environ, SECRET_KEY="bench-secret"))["QUEUE_MAX_DEPTH"]
    if o.backlog >= max_depth:
        p.error(f"--backlog must stay below the web's QUEUE_MAX_DEPTH ({max_depth})")
    if o.workers not in DRAIN_WORKERS:
        p.error(f"--workers must be one of {DRAIN_WORKERS} (the drains measure those)")
    return o


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    o = options(argv)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    workdir = tempfile.mkdtemp(prefix="survey-bench-")
    started = time.monotonic()

    def log(message):
        print(f"[{time.monotonic() - started:6.0f}s] {message}", file=sys.stderr, flush=True)

    load_before = os.getloadavg()
    stack = Stack(workdir, web_concurrency=o.web_concurrency)
    rounds, visitors, hooks, before = [], None, None, None
    try:
        if o.beside:
            before = beside.run(o.beside, argv, log)
        if not o.only or set(o.only) & set(Round.STEPS):
            for i in range(o.rounds):
                log(f"round {i + 1} of {o.rounds}")
                rounds.append(Round(stack, o, log).run())
        if not o.only or "visits" in o.only:
            log("visits")
            visitors = visits.run(stack, o, log)
        if not o.only or "webhooks" in o.only:
            log("webhooks")
            hooks = webhooks.run(stack, o, log)
    except BenchFailure as exc:
        print(f"\nBENCHMARK FAILED: {exc}\n(logs in {workdir})", file=sys.stderr)
        return 1
    finally:
        stack.destroy()
    median = report.median_of(rounds) if rounds else {}
    if o.only:
        figures = {**median, **({"visits": visitors} if visitors else {}), **({"webhooks": hooks} if hooks else {})}
        print(json.dumps(figures, indent=1))
        if visitors:
            print(visits.table(visitors))
        if hooks:
            print(webhooks.table(hooks))
        if before is not None:
            print(beside.table(o.beside, before, figures, o.workers))
        print(f"load average before {load_before[0]:.1f}, after {os.getloadavg()[0]:.1f}")
        shutil.rmtree(workdir, ignore_errors=True)
        return 0
    record = {
        "time": stamp,
        "seconds": round(time.monotonic() - started),
        "machine": {"cpus": os.cpu_count(), "loadavg_before": load_before, "loadavg_after": os.getloadavg()},
        "options": vars(o),
        "median": median,
        "targets": [dict(zip(("name", "value", "target", "met"), t)) for t in report.ratios(median, o.workers)],
        "capacity": capacity.model(median, o.workers, os.cpu_count()),
        "rounds": rounds,
        "visits": visitors,
        "webhooks": hooks,
    }
    print(report.table(median, o.workers, o.rounds))
    print()
    print(visits.table(visitors))
    print()
    print(webhooks.table(hooks))
    if before is not None:
        print()
        print(beside.table(o.beside, before, record, o.workers))
    png = report.write(record, o.out, stamp, plot=not o.no_plot)
    print(f"\nload average before {load_before[0]:.1f}, after {os.getloadavg()[0]:.1f} "
          f"({os.cpu_count()} cores); {record['seconds']} s; results in {Path(o.out) / 'latest.json'}"
          + (f", plot {png}" if png else ""))
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
