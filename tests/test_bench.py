"""The benchmark (bench/, `make bench`) runs end to end, so it cannot rot.

A smoke run with tiny counts: it proves the harness drives the real web,
workers, wrk, pgbench and redis-benchmark, and nginx in front for the
visitors' step, and that its exactly-once checks pass.  It asserts no figures: timing targets belong to the benchmark itself."""

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

    # The visitors' step: one short probe of full visits through nginx, each
    # visitor's 303 stored once (checked by the step) and seen stored on its receipt.
    visits = record["visits"]
    assert visits["capacity"] is None and visits["overload"] is None  # --quick: no search
    (probe,) = visits["probes"]
    assert probe["stored"]["accepted"] == probe["stored"]["rows"] > 0
    assert probe["stored_seen"] > 0
    # Form, its two static files, the post and the receipt at least, for each accepted visitor.
    assert probe["requests"] >= 5 * probe["stored"]["accepted"]
    assert set(probe["cpu"]) >= {"nginx", "gunicorn", "worker", "redis", "postgres", "load generator"}
    assert probe["lag_ms"]["max"] is not None
    assert "visitors per second" in done.stdout


def test_bench_refuses_an_unknown_step():
    done = subprocess.run([sys.executable, "-m", "bench", "--only", "visits,nonsense"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "no step nonsense" in done.stderr
