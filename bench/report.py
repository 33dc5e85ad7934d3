"""Medians over rounds, the ratios against issue 12's targets, the printed
table (with the capacity model, bench/capacity.py), the JSON record and the plot."""

import json
import os
import statistics
from pathlib import Path

from . import capacity
from .rounds import DRAIN_WORKERS

# Issue 12's targets that are not ratios of two figures.
TARGET_DRAIN_WORKERS = 2
KEPT_UP = 0.95          # stored by the round's end / accepted
WORKER_RSS_MIB = 64
REDIS_BYTES = 1024


def median_of(rounds):
    """Leaf-wise median of a list of nested dicts; a key missing from some
    rounds (a Redis command only some rounds sent) is the median of the others."""
    first = rounds[0]
    if isinstance(first, dict):
        keys = dict.fromkeys(k for r in rounds for k in r)
        return {k: median_of([r[k] for r in rounds if k in r]) for k in keys}
    return statistics.median(rounds)


def ratios(m, workers):
    """(name, value, target text, met) for each target of issue 12."""
    def ratio(a, b):
        return a / b if b else float("inf")

    ours, naive = m["queued_healthy"], m["naive_healthy"]
    web = ratio(m["web_queue"]["rate"], m["web_none"]["rate"])
    rate = ratio(ours["rate"], naive["rate"])
    p99 = ratio(ours["p99_ms"], naive["p99_ms"])
    kept_up = ratio(ours["stored_at_end"], ours["accepted"])
    drain = ratio(m["drains"][TARGET_DRAIN_WORKERS]["rows_per_s"], m["pg_1"])
    slow = ratio(m["queued_slow"]["p99_ms"], ours["p99_ms"])
    outage = ratio(m["outage"]["rate"], ours["rate"])
    return [
        (f"ours / naive accepted rate (healthy DB, {workers} worker(s))", rate, ">= 1.00", rate >= 1.0),
        (f"ours / naive POST p99 (healthy DB, {workers} worker(s))", p99, "<= 1.20", p99 <= 1.2),
        (f"stored by the round's end / accepted (ours, healthy; backlog {ours['backlog_at_end']:.0f})",
         kept_up, f">= {KEPT_UP:.2f}", kept_up >= KEPT_UP),
        (f"drain rows/s ({TARGET_DRAIN_WORKERS} workers) / pgbench 1-client commits/s", drain, ">= 1.00",
         drain >= 1.0),
        ("web accepted rate / same app without enqueuing", web, ">= 0.80", web >= 0.8),
        ("queued POST p99: slow DB / healthy DB", slow, "<= 2.0", slow <= 2),
        ("naive accepted rate: slow DB / healthy DB (shown, should drop)",
         ratio(m["naive_slow"]["rate"], naive["rate"]), "< 1 (drops)", m["naive_slow"]["rate"] < naive["rate"]),
        ("accepted rate during DB outage / healthy (with workers)", outage, ">= 0.80", outage >= 0.8),
        ("Redis bytes per queued submission", m["redis_bytes_per_submission"], f"<= {REDIS_BYTES}",
         m["redis_bytes_per_submission"] <= REDIS_BYTES),
        ("worker peak RSS (each), MiB", m["worker_peak_rss_mb"], f"<= {WORKER_RSS_MIB}",
         m["worker_peak_rss_mb"] <= WORKER_RSS_MIB),
        ("lost or duplicated submissions, all rounds", 0, "= 0", True),
    ]


def table(m, workers, n_rounds):
    lines = [f"median of {n_rounds} round(s)", ""]

    def row(what, value):
        lines.append(f"  {what:<58} {value}")

    def web(label, w):
        row(label, f"{w['rate']:8.0f} /s   p50 {w['p50_ms']:7.1f} ms   p99 {w['p99_ms']:7.1f} ms")

    lines.append("(a) machine limits")
    row("redis-benchmark LPUSH / RPOP", f"{m['redis']['lpush']:8.0f} /s   {m['redis']['rpop']:.0f} /s")
    row("PostgreSQL INSERT commits (pgbench), 1 client / 8 clients", f"{m['pg_1']:8.0f} /s   {m['pg_8']:.0f} /s")
    web("web POST without enqueuing (bench/naive_app.py)", m["web_none"])
    lines.append("web (ours, enqueuing; workers stopped)")
    web("accepted submissions", m["web_queue"])
    lines.append("workers")
    for n in DRAIN_WORKERS:
        d = m["drains"][n]
        row(f"{n} worker(s): stored rows, drain of {d['backlog']:.0f}",
            f"{d['rows_per_s']:8.0f} /s   {d['drain_s']:.1f} s")
    lines.append(f"end to end (ours, {workers} workers, at half their or the web's rate)")
    e = m["e2e"]
    row(f"submitted -> stored at {e['offered_rate']:.0f} posts/s", f"p50 {e['p50_ms']:7.1f} ms   p99 {e['p99_ms']:7.1f} ms")
    lines.append(f"(b) naive (insert in the request) vs ours ({workers} workers running)")
    web("naive, healthy database", m["naive_healthy"])
    web("naive, slow database (20 ms per insert)", m["naive_slow"])
    web("ours, healthy database", m["queued_healthy"])
    row("  stored when the last post was answered / accepted",
        f"{m['queued_healthy']['stored_at_end']:8.0f}   of {m['queued_healthy']['accepted']:.0f}")
    web("ours, slow database", m["queued_slow"])
    lines.append("(c) ours with PostgreSQL stopped")
    o = m["outage"]
    web("accepted during the outage", o)
    row("catch up after PostgreSQL is back", f"{o['catch_up_s']:8.1f} s")
    lines.append("memory")
    row("web peak RSS (gunicorn master + workers)", f"{m['web_peak_rss_mb']:8.1f} MiB")
    row("worker peak RSS (each)", f"{m['worker_peak_rss_mb']:8.1f} MiB")
    row("Redis per queued submission", f"{m['redis_bytes_per_submission']:8.0f} bytes")
    lines.append("")
    lines.append(capacity.table(capacity.model(m, workers, os.cpu_count())))
    lines.append("")
    lines.append("targets")
    for name, value, target, met in ratios(m, workers):
        lines.append(f"  {name:<64} {value:8.3f}  target {target:<12} {'met' if met else 'UNMET'}")
    return "\n".join(lines)


def draw(m, workers, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    counts = list(DRAIN_WORKERS)
    left.plot(counts, [m["drains"][n]["rows_per_s"] for n in counts], "o-", label="stored rows/s (ours)")
    left.axhline(m["pg_1"], color="red", linestyle=":",
                 label="pgbench, 1 client, commits/s (target: 2 workers at least that)")
    left.set_xticks(counts)
    left.set_xlabel("workers")
    left.set_ylabel("rows / s")
    left.set_ylim(bottom=0)
    left.set_title("Draining a backlog")
    left.legend(fontsize="small", loc="center right")

    labels = ["naive\nhealthy", "naive\nslow DB", "queued\nhealthy", "queued\nslow DB"]
    keys = ["naive_healthy", "naive_slow", "queued_healthy", "queued_slow"]
    bars = right.bar(labels, [m[k]["p99_ms"] for k in keys], color=["#c66", "#c66", "#69c", "#69c"])
    right.bar_label(bars, fmt="%.0f ms")
    right.set_ylabel("POST latency p99 (ms)")
    right.set_title(f"POST p99, {workers} workers, slow DB = 20 ms per insert")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write(record, out_dir, stamp, plot=True):
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(record, indent=2, sort_keys=True)
    (out_dir / f"{stamp}.json").write_text(text)
    (out_dir / "latest.json").write_text(text)
    if not plot:
        return None
    draw(record["median"], record["options"]["workers"], out_dir / "latest.png")
    return out_dir / "latest.png"
