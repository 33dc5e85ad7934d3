"""Medians over rounds, the ratios against issue 8's targets, the printed
table, the JSON record and the plot."""

import json
import statistics
from pathlib import Path

from .rounds import DRAIN_WORKERS


def median_of(rounds):
    """Leaf-wise median of a list of equally shaped nested dicts."""
    first = rounds[0]
    if isinstance(first, dict):
        return {k: median_of([r[k] for r in rounds]) for k in first}
    return statistics.median(rounds)


def ratios(m, workers):
    """(name, value, target text, met) for each target of the issue."""
    def ratio(a, b):
        return a / b if b else float("inf")

    stored = m["drains"][workers]["rows_per_s"]
    return [
        ("web accepted rate / same app without enqueuing", ratio(m["web_queue"]["rate"], m["web_none"]["rate"]),
         ">= 0.80", ratio(m["web_queue"]["rate"], m["web_none"]["rate"]) >= 0.8),
        (f"stored rows/s ({workers} workers) / PostgreSQL 1-client commits/s", ratio(stored, m["pg_1"]),
         ">= 0.50", ratio(stored, m["pg_1"]) >= 0.5),
        ("queued POST p99: slow DB / healthy DB", ratio(m["queued_slow"]["p99_ms"], m["queued_healthy"]["p99_ms"]),
         "<= 2.0", ratio(m["queued_slow"]["p99_ms"], m["queued_healthy"]["p99_ms"]) <= 2),
        ("naive accepted rate: slow DB / healthy DB (shown, should drop)",
         ratio(m["naive_slow"]["rate"], m["naive_healthy"]["rate"]), "< 1 (drops)",
         m["naive_slow"]["rate"] < m["naive_healthy"]["rate"]),
        ("accepted rate during DB outage / healthy (with workers)",
         ratio(m["outage"]["rate"], m["queued_healthy"]["rate"]), ">= 0.80",
         ratio(m["outage"]["rate"], m["queued_healthy"]["rate"]) >= 0.8),
        ("Redis bytes per queued submission", m["redis_bytes_per_submission"], "<= 1024",
         m["redis_bytes_per_submission"] <= 1024),
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
    row("PostgreSQL INSERT commits, 1 client / 8 clients", f"{m['pg_1']:8.0f} /s   {m['pg_8']:.0f} /s")
    web("web POST without enqueuing (bench/naive_app.py)", m["web_none"])
    lines.append("web (ours, enqueuing; workers stopped)")
    web("accepted submissions", m["web_queue"])
    lines.append("workers")
    for n in DRAIN_WORKERS:
        d = m["drains"][n]
        row(f"{n} worker(s): stored rows, drain of {d['backlog']:.0f}",
            f"{d['rows_per_s']:8.0f} /s   {d['drain_s']:.1f} s")
    lines.append(f"end to end (ours, {workers} workers, at half their rate)")
    e = m["e2e"]
    row(f"submitted -> stored at {e['offered_rate']:.0f} posts/s", f"p50 {e['p50_ms']:7.1f} ms   p99 {e['p99_ms']:7.1f} ms")
    lines.append(f"(b) naive (insert in the request) vs ours ({workers} workers running)")
    web("naive, healthy database", m["naive_healthy"])
    web("naive, slow database (20 ms per insert)", m["naive_slow"])
    web("ours, healthy database", m["queued_healthy"])
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
    left.axhline(m["pg_1"], color="grey", linestyle="--", label="PostgreSQL, 1 client, commits/s")
    left.axhline(0.5 * m["pg_1"], color="red", linestyle=":", label="target: 50% of that")
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
