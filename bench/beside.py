"""`--beside REV`: the same steps on another commit's code, in the same run,
and the figures a visit's cost is judged by printed side by side.

REV's code runs first, from a git worktree of it (a checkout beside this one
that shares the venv), with the same options; then this checkout's.  Both
on the same machine within minutes, so a change is measured against its
before rather than against figures from another day (docs/capacity.md)."""

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .rounds import BenchFailure
from .stack import ROOT


def without_beside(argv):
    """argv less its --beside option, for REV's own bench."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--beside":
            skip = True
        elif not arg.startswith("--beside="):
            out.append(arg)
    return out


def run(rev, argv, log):
    """REV's record of the same steps: its latest.json, or (with --only) what it printed."""
    workdir = Path(tempfile.mkdtemp(prefix="survey-bench-beside-"))
    tree = workdir / "tree"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(tree), rev], check=True)
    try:
        (tree / ".venv").symlink_to(ROOT / ".venv")
        out = workdir / "out"
        args = [*without_beside(argv), "--out", str(out), "--no-plot"]
        log(f"beside {rev}: python -m bench {' '.join(args)}")
        # Its progress goes to our stderr as it runs; its figures come back on stdout.
        done = subprocess.run([sys.executable, "-m", "bench", *args], cwd=tree, stdout=subprocess.PIPE, text=True)
        if done.returncode:
            raise BenchFailure(f"the bench of {rev} failed (exit {done.returncode})")
        if (out / "latest.json").exists():
            return json.loads((out / "latest.json").read_text())
        record, _ = json.JSONDecoder().raw_decode(done.stdout)
        return record
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)
        shutil.rmtree(workdir, ignore_errors=True)


def _get(record, *path):
    for key in path:
        if not isinstance(record, dict) or key not in record:
            return None
        record = record[key]
    return record


def _at_capacity(visits):
    if not visits or not visits.get("capacity"):
        return None
    return next((p for p in visits["probes"] if p["rate"] == visits["capacity"]), None)


def figures(record, workers):
    """(label, value) rows of one record: a full run's or an --only run's."""
    m = record.get("median", record)
    visits = record.get("visits")
    cap = _at_capacity(visits)
    over = _get(visits, "overload")
    naive, ours = m.get("naive_healthy"), m.get("queued_healthy")
    routes = _get(cap, "web_by_route", "cpu_us") or {}
    drains = m.get("drains") or {}
    drain = drains.get(workers, drains.get(str(workers)))  # int keys in this run's record, str in JSON
    rows = [
        ("visitors/s at capacity (post p99 < 200 ms, nothing failed)", _get(visits, "capacity"), "{:.0f}"),
        ("  post p99 at capacity, ms", _get(cap, "posts_by_status", "303", "p99_ms"), "{:.1f}"),
        ("  requests per visit (all)", _get(cap, "requests_per_visit"), "{:.2f}"),
    ]
    for route, n in (_get(cap, "web_by_route", "requests") or {}).items():
        rows.append((f"  {route}: requests per visit", n, "{:.2f}"))
    for route, us in routes.items():
        rows.append((f"  the web's CPU per visit, {route}, us", us, "{:.0f}"))
    rows += [
        ("  gunicorn CPU per visit, us", _get(cap, "cpu_us_per_visit", "gunicorn"), "{:.0f}"),
        ("at twice the capacity: admitted posts' p99, ms", _get(over, "posts_by_status", "303", "p99_ms"), "{:.0f}"),
        ("  posts answered within 2 s", _get(over, "posts_answered_in_2s"), "{:.1%}"),
        ("  visitors with the form within 2 s", _get(over, "form_in_2s"), "{:.1%}"),
        ("posts/s, healthy database: ours", _get(ours, "rate"), "{:.0f}"),
        ("  naive", _get(naive, "rate"), "{:.0f}"),
        ("  ours / naive", ours and naive and ours["rate"] / naive["rate"], "{:.2f}"),
        ("  post p99 ours / naive", ours and naive and ours["p99_ms"] / naive["p99_ms"], "{:.2f}"),
        ("the web alone, posts/s", _get(m, "web_queue", "rate"), "{:.0f}"),
        ("the web's CPU per post, us", _get(m, "enqueue_cost", "web_cpu_us"), "{:.0f}"),
        ("Redis commands per post", _get(m, "enqueue_cost", "redis_commands"), "{:.1f}"),
        ("Redis CPU per post, us", _get(m, "enqueue_cost", "redis_cpu_us"), "{:.0f}"),
        ("Redis commands per stored submission", _get(drain, "cost", "redis_commands"), "{:.1f}"),
    ]
    return rows


def table(rev, before, after, workers):
    """The two records' figures, a row each; '-' where a step did not run."""
    def shown(value, fmt):
        return "-" if value is None else fmt.format(value)
    old = {label: value for label, value, _ in figures(before, workers)}
    lines = [f"beside {rev} (run first) and this checkout", f"  {'':<62} {rev[:12]:>12} {'this':>12}"]
    for label, new, fmt in figures(after, workers):
        if old.get(label) is None and new is None:
            continue
        lines.append(f"  {label:<62} {shown(old.get(label), fmt):>12} {shown(new, fmt):>12}")
    return "\n".join(lines)
