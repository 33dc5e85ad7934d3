"""The visitors' step (`--only visits`): how many visitors per second the
front (nginx, gunicorn, the worker, Redis, PostgreSQL, as `make run` has them)
serves, and what happens to visitors at twice that.

1. A step search for the capacity: the highest rate of full visits
   (bench/visitors.py) at which every visitor gets the form, a 303 and a stored
   receipt, and the posts' p99 stays under POST_P99_MS.  Rates double from
   --visit-start-rate until one fails, then the geometric middle of the
   highest good and lowest bad rate until they are within 20%.
2. Twice that rate, against issue 17's target: the admitted (303) posts' p99
   under 1 s, every post answered 303, 429 or 503 within 2 s, and the form
   within 2 s for 95% of visitors.

Every probe checks that each 303 is exactly one row, that no refused post
(429, 503) is one, and that the table holds nothing else; and it splits the
machine's CPU by process group, the load generator included (it shares the
cores), next to the generator's lag (how late visitors arrived)."""

import math
import os
import time
import urllib.request
from collections import Counter

import psycopg2
from prometheus_client.parser import text_string_to_metric_families
from rq.registry import FailedJobRegistry
from rq.serializers import JSONSerializer

from web import metrics

from . import visitors
from .cpu import group_seconds, machine_seconds
from .rounds import BenchFailure

POST_P99_MS = 200
# Issue 17's target at twice the capacity.
ADMITTED_P99_MS = 1000
ANSWER_MS = 2000
FORM_SHARE = 0.95
ANSWERED = (303, 429, 503)

MAX_PROBES = 8
CLOSE_ENOUGH = 1.2          # stop when the lowest failing rate is within 20% of the highest good one
# Probes fail a visitor who waits this long for one answer: anything near it fails the p99 anyway.
PROBE_REQUEST_TIMEOUT_S, PROBE_VISIT_LIMIT_S = 5, 30
# At twice the capacity visitors wait as long as a browser would.
OVERLOAD_REQUEST_TIMEOUT_S, OVERLOAD_VISIT_LIMIT_S = 30, 60

# The web's route labels (web/metrics.py), and its label for the rest.
ROUTES = (*metrics.ROUTES.values(), "other")
COUNTERS = {"survey_web_request_cpu_seconds_total": "cpu", "survey_web_requests_total": "requests"}

COUNT_IDS = "SELECT count(*) FROM cats WHERE submission_id = ANY(%s::uuid[])"


def percentile(values, p):
    """Nearest rank; None for no values (inf for a visitor never answered)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(len(ordered) * p / 100) - 1)]


def summarize(records, rate, seconds):
    posts = [r for r in records if r.get("posted")]
    statuses = Counter(r["post_status"] for r in posts if "post_status" in r)
    by_status = {}
    for status in ANSWERED:
        ms = [r["post_ms"] for r in posts if r.get("post_status") == status]
        by_status[str(status)] = {"share": len(ms) / len(posts) if posts else 0.0,
                                  "p50_ms": percentile(ms, 50), "p99_ms": percentile(ms, 99)}
    answered_in_time = sum(1 for r in posts if r.get("post_status") in ANSWERED and r["post_ms"] <= ANSWER_MS)
    # A visitor whose form never came waited forever, as far as percentiles go.
    form = [r["form_ms"] if r.get("form_status") == 200 else math.inf for r in records]
    lag = [r["lag_ms"] for r in records if "lag_ms" in r]
    failures = Counter(r["failure"] for r in records if "failure" in r)
    return {
        "rate": rate, "seconds": seconds, "visits": len(records), "posts": len(posts),
        "requests": sum(r.get("requests", 0) for r in records),
        "post_statuses": {str(k): v for k, v in sorted(statuses.items())},
        "posts_by_status": by_status,
        "posts_answered_in_2s": answered_in_time / len(posts) if posts else 0.0,
        "form_p95_ms": percentile(form, 95), "form_p99_ms": percentile(form, 99),
        "form_in_2s": sum(1 for ms in form if ms <= ANSWER_MS) / len(form) if form else 0.0,
        "stored_seen": sum(1 for r in records if r.get("stored_seen")),
        "failures": dict(failures.most_common()), "failed": sum(failures.values()),
        "lag_ms": {"p50": percentile(lag, 50), "p99": percentile(lag, 99), "max": max(lag, default=None)},
    }


def fully_served(s):
    """The capacity criterion: every visitor stored, no refusal, posts' p99 under POST_P99_MS."""
    p99 = s["posts_by_status"]["303"]["p99_ms"]
    return (s["visits"] > 0 and s["failed"] == 0 and s["stored_seen"] == s["visits"]
            and p99 is not None and p99 < POST_P99_MS)


def overload_targets(s):
    """(name, value, target, met) of issue 17's target at twice the capacity."""
    p99 = s["posts_by_status"]["303"]["p99_ms"]
    return [
        ("admitted (303) posts' p99, ms", p99, f"< {ADMITTED_P99_MS}", p99 is not None and p99 < ADMITTED_P99_MS),
        ("posts answered 303/429/503 within 2 s", s["posts_answered_in_2s"], "= 100%",
         s["posts_answered_in_2s"] == 1.0),
        ("visitors with the form within 2 s", s["form_in_2s"], f">= {FORM_SHARE:.0%}", s["form_in_2s"] >= FORM_SHARE),
    ]


def _count(stack, ids):
    conn = psycopg2.connect(stack.database_url, connect_timeout=5)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(COUNT_IDS, (list(ids),))
            return cur.fetchone()[0]
    finally:
        conn.close()


def check_stored(stack, records, rows_before, timeout):
    """Each 303 is exactly one row, no refused post is one, nothing else was added."""
    accepted = [r["sid"] for r in records if r.get("post_status") == 303]
    refused = [r["sid"] for r in records if r.get("post_status") in (429, 503)]
    unanswered = [r["sid"] for r in records if r.get("posted") and "post_status" not in r]
    deadline = time.monotonic() + timeout
    while (stored := _count(stack, accepted)) < len(accepted):
        if time.monotonic() > deadline:
            raise BenchFailure(f"only {stored} of {len(accepted)} accepted visits stored after {timeout:.0f} s")
        time.sleep(0.1)
    if stored != len(accepted):
        raise BenchFailure(f"{stored} rows for {len(accepted)} accepted visits")
    if refused and _count(stack, refused):
        raise BenchFailure("a post answered 429 or 503 was stored")
    # A post whose answer never came may have been accepted: let it be stored before counting.
    time.sleep(1 if unanswered else 0)
    stored_unanswered = _count(stack, unanswered) if unanswered else 0
    added = stack.row_count() - rows_before
    if added != len(accepted) + stored_unanswered:
        raise BenchFailure(f"{added} rows added for {len(accepted)} accepted visits "
                           f"(+{stored_unanswered} posts stored whose answer never came)")
    failed = FailedJobRegistry("submissions", connection=stack.redis, serializer=JSONSerializer).count
    if failed:
        raise BenchFailure(f"{failed} jobs in RQ's failed registry")
    return {"accepted": len(accepted), "rows": stored, "stored_without_answer": stored_unanswered}


def cpu_split(before, after, machine_before, machine_after, generator_s, wall_s, cores):
    """Each group's share of the machine (all cores) over the run, the load
    generator and everything else on the machine (other jobs) included."""
    shares = {k: (after[k] - before[k]) / (wall_s * cores) for k in before}
    shares["load generator"] = generator_s / (wall_s * cores)
    busy = (machine_after[0] - machine_before[0]) / (machine_after[1] - machine_before[1])
    shares["other (not ours)"] = max(0.0, busy - sum(shares.values()))
    shares["machine busy"] = busy
    return shares


def route_counters(stack):
    """The web's CPU seconds and requests by route, summed over its processes (its /metrics)."""
    with urllib.request.urlopen(stack.web_metrics_url, timeout=10) as answer:
        text = answer.read().decode()
    totals = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            kind = COUNTERS.get(sample.name)
            if kind:
                totals[kind, sample.labels["route"]] = totals.get((kind, sample.labels["route"]), 0.0) + sample.value
    return totals


def by_route(before, after, visits, gunicorn_us):
    """Per visit: the app's CPU µs and requests by route, and gunicorn's CPU outside the app."""
    def delta(kind, route):
        return after.get((kind, route), 0.0) - before.get((kind, route), 0.0)
    n = max(1, visits)
    cpu = {route: 1e6 * delta("cpu", route) / n for route in ROUTES}
    cpu["gunicorn outside the app"] = max(0.0, gunicorn_us - sum(cpu.values()))
    return {"cpu_us": cpu, "requests": {route: delta("requests", route) / n for route in ROUTES}}


def probe(stack, rate, seconds, seed, request_timeout, visit_limit, drain_timeout):
    rows_before = stack.row_count()
    routes = route_counters(stack)
    groups, machine = group_seconds(stack), machine_seconds()
    records, generator_s, wall_s = visitors.run(stack.proxy_port, rate, seconds, seed, request_timeout, visit_limit)
    cpu = cpu_split(groups, group_seconds(stack), machine, machine_seconds(), generator_s, wall_s, os.cpu_count())
    routes_after = route_counters(stack)
    s = summarize(records, rate, seconds)
    s["cpu"], s["wall_s"] = cpu, wall_s
    # What one visit costs each group, next to the per-submission model (docs/capacity.md).
    s["cpu_us_per_visit"] = {k: 1e6 * x * wall_s * os.cpu_count() / max(1, s["visits"])
                             for k, x in cpu.items() if k not in ("other (not ours)", "machine busy")}
    s["requests_per_visit"] = s["requests"] / max(1, s["visits"])
    s["web_by_route"] = by_route(routes, routes_after, s["visits"], s["cpu_us_per_visit"]["gunicorn"])
    s["stored"] = check_stored(stack, records, rows_before, drain_timeout)
    s["fully_served"] = fully_served(s)
    return s


def run(stack, o, log):
    """The step: the search, then twice the capacity (or, with --quick, one short probe)."""
    stack.reset()
    stack.start_front()
    stack.start_workers(o.workers)
    stack.wait_workers_ready()
    seed = 1
    try:
        if o.quick:
            s = probe(stack, o.visit_start_rate, o.visit_seconds, seed, OVERLOAD_REQUEST_TIMEOUT_S,
                      OVERLOAD_VISIT_LIMIT_S, o.drain_timeout)
            return {"probes": [s], "capacity": None, "overload": None}
        probes, good, bad, rate = [], None, None, o.visit_start_rate
        for seed in range(1, MAX_PROBES + 1):
            s = probe(stack, rate, o.visit_seconds, seed, PROBE_REQUEST_TIMEOUT_S, PROBE_VISIT_LIMIT_S,
                      o.drain_timeout)
            probes.append(s)
            log(f"  visits {rate:.0f}/s: {'ok' if s['fully_served'] else 'not served'} "
                f"(post p99 {_ms(s['posts_by_status']['303']['p99_ms'])}, {s['failed']} failed, "
                f"statuses {s['post_statuses']})")
            if s["fully_served"]:
                good = rate if good is None else max(good, rate)
            else:
                bad = rate if bad is None else min(bad, rate)
            if bad is None:
                rate *= 2
            elif good is None:
                rate /= 2
                if rate < 1:
                    break
            elif bad / good <= CLOSE_ENOUGH:
                break
            else:
                rate = round(math.sqrt(good * bad))
            wait_queue_empty(stack, o.drain_timeout)
        out = {"probes": probes, "capacity": good, "overload": None}
        if good:
            wait_queue_empty(stack, o.drain_timeout)
            log(f"  visits at twice the capacity, {2 * good:.0f}/s for {o.overload_seconds:.0f} s")
            out["overload"] = probe(stack, 2 * good, o.overload_seconds, MAX_PROBES + 1,
                                    OVERLOAD_REQUEST_TIMEOUT_S, OVERLOAD_VISIT_LIMIT_S, o.drain_timeout)
            out["targets"] = [dict(zip(("name", "value", "target", "met"), t))
                              for t in overload_targets(out["overload"])]
        return out
    finally:
        stack.stop_proxy()
        stack.stop_workers()
        stack.stop_web()


def wait_queue_empty(stack, timeout):
    deadline = time.monotonic() + timeout
    while stack.queued() and time.monotonic() < deadline:
        time.sleep(0.1)


def _ms(x):
    return "-" if x is None else ("never" if math.isinf(x) else f"{x:.1f} ms" if x < 1000 else f"{x:.0f} ms")


def _pct(x):
    return f"{100 * x:.1f}%"


def table(v):
    lines = ["visitors per second (full visits through nginx: form, assets, post, receipt polled until stored)"]
    for s in v["probes"]:
        lines.append(f"  {s['rate']:6.0f}/s for {s['seconds']:.0f} s  {'served ' if s['fully_served'] else 'NOT served'}"
                     f"  post p99 {_ms(s['posts_by_status']['303']['p99_ms']):>8}  failed {s['failed']}"
                     f"  statuses {s['post_statuses']}  lag p99 {s['lag_ms']['p99']:.1f} ms")
    if v["capacity"] is None:
        lines.append("  capacity: not searched (--quick)" if len(v["probes"]) == 1 else
                     "  capacity: no rate served every visitor")
    else:
        cap = next(s for s in v["probes"] if s["rate"] == v["capacity"])
        lines.append(f"  capacity: {v['capacity']:.0f} visitors/s (every visitor stored, post p99 "
                     f"{_ms(cap['posts_by_status']['303']['p99_ms'])} < {POST_P99_MS} ms)")
        lines += cpu_lines(f"CPU at {v['capacity']:.0f}/s", cap)
    o = v.get("overload")
    if o:
        lines.append(f"  at twice that, {o['rate']:.0f}/s for {o['seconds']:.0f} s: {o['visits']} visitors, "
                     f"{o['posts']} posts, {o['stored_seen']} saw their receipt stored")
        for status, x in o["posts_by_status"].items():
            lines.append(f"    posts answered {status}: {_pct(x['share']):>6}   p50 {_ms(x['p50_ms']):>8}   "
                         f"p99 {_ms(x['p99_ms']):>8}")
        lines.append(f"    form p95 {_ms(o['form_p95_ms'])}, p99 {_ms(o['form_p99_ms'])}")
        lines.append(f"    failures: {o['failures'] or 'none'}")
        st = o["stored"]
        lines.append(f"    stored exactly once: {st['rows']} rows for {st['accepted']} 303s "
                     f"(+{st['stored_without_answer']} posts stored whose answer never came)")
        lines += cpu_lines("CPU", o)
        for name, value, target, met in overload_targets(o):
            shown = _ms(value) if "ms" in name else _pct(value)
            lines.append(f"    target: {name:<40} {shown:>8}  {target:<8} {'met' if met else 'UNMET'}")
    return "\n".join(lines)


def cpu_lines(title, s):
    cpu = s["cpu"]
    lag = s["lag_ms"]
    return [f"    {title}, share of all cores: " + ", ".join(f"{k} {_pct(x)}" for k, x in cpu.items()),
            "    of the busy CPU: " + ", ".join(f"{k} {_pct(x / cpu['machine busy'])}" for k, x in cpu.items()
                                           if k != "machine busy" and cpu["machine busy"] > 0),
            "    CPU per visit: " + ", ".join(f"{k} {x:.0f} us" for k, x in s["cpu_us_per_visit"].items()),
            f"    requests per visit: {s['requests_per_visit']:.2f} (to the web, by route: "
            + ", ".join(f"{k} {x:.2f}" for k, x in s["web_by_route"]["requests"].items()) + ")",
            "    the web's CPU per visit by route: "
            + ", ".join(f"{k} {x:.0f} us" for k, x in s["web_by_route"]["cpu_us"].items()),
            f"    load generator lag (visitors started late): p50 {lag['p50']:.1f} ms, p99 {lag['p99']:.1f} ms, "
            f"max {lag['max']:.1f} ms"]
