"""The benchmark (bench/, `make bench`) runs end to end, so it cannot rot.

A smoke run with tiny counts: it proves the harness drives the real web,
workers, wrk, pgbench and redis-benchmark, and that its exactly-once check
passes.  It asserts no figures: timing targets belong to the benchmark itself."""

import json
import subprocess
import sys

from tests.servers import ROOT


def test_bench_quick_run_stores_every_accepted_post_once(tmp_path):
    done = subprocess.run([sys.executable, "-m", "bench", "--quick", "--no-plot", "--out", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "targets" in done.stdout
    record = json.loads((tmp_path / "latest.json").read_text())
    m = record["median"]
    # Every scenario ran and accepted posts (each was then checked row by row).
    for scenario in ("web_none", "web_queue", "naive_healthy", "naive_slow", "queued_healthy",
                     "queued_slow", "outage"):
        assert m[scenario]["accepted"] > 0, scenario
    assert set(m["drains"]) == {"1", "2", "4"}
    assert all(d["backlog"] > 0 for d in m["drains"].values())
    assert m["redis_bytes_per_submission"] > 0
    assert len(record["targets"]) == 11
    assert "capacity model" in done.stdout
    # The capacity model measured every component's CPU and the Redis commands of both sides.
    cap = record["capacity"]
    assert set(cap["components"]) == {"web", "worker", "postgres", "redis"}
    # (Not PostgreSQL's: it may store a smoke run's 200 rows within one 10 ms /proc tick.)
    assert all(cap["components"][c]["cpu_us"] > 0 for c in ("web", "worker", "redis")), cap["components"]
    assert cap["redis_commands"]["enqueue"] > 0 and cap["redis_commands"]["storage"] > 0
    assert cap["redis_bytes"]["finished"] > 0
    assert cap["first_to_saturate"] in cap["components"]
    assert m["queued_healthy"]["stored_at_end"] <= m["queued_healthy"]["accepted"]
