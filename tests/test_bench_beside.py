"""bench/beside.py: REV's bench gets the same options less --beside, and the
table lines up each figure of both runs, '-' where one run lacks it."""

import json

from bench import beside


def test_reruns_with_the_same_options_less_beside():
    assert beside.without_beside(["--only", "visits", "--beside", "e452b0f", "--rounds=1", "--beside=x"]) == [
        "--only", "visits", "--rounds=1"]


def record(capacity, routes=None, naive=1000, ours=500):
    probe = {"rate": capacity, "posts_by_status": {"303": {"p99_ms": 150.0}}, "requests_per_visit": 6.0,
             "cpu_us_per_visit": {"gunicorn": 7000.0}}
    if routes:
        probe["web_by_route"] = {"cpu_us": routes, "requests": {route: 1.0 for route in routes}}
    return {"naive_healthy": {"rate": naive, "p99_ms": 10.0}, "queued_healthy": {"rate": ours, "p99_ms": 20.0},
            "visits": {"capacity": capacity, "probes": [probe], "overload": None},
            "drains": {1: {"cost": {"redis_commands": 26.0}}}}


def test_each_figure_is_beside_its_old_one():
    before = json.loads(json.dumps(record(134)))  # REV's, read back from its JSON: its keys are strings
    after = record(160, routes={"form": 1012.0, "post": 1445.0}, ours=750)
    lines = beside.table("e452b0f", before, after, 1).splitlines()
    row = {line[:64].strip(): line[64:].split() for line in lines[2:]}
    assert row["visitors/s at capacity (post p99 < 200 ms, nothing failed)"] == ["134", "160"]
    assert row["the web's CPU per visit, form, us"] == ["-", "1012"]
    assert row["ours / naive"] == ["0.50", "0.75"]
    assert row["Redis commands per stored submission"] == ["26.0", "26.0"]
    # Steps neither run took are left out.
    assert not any(label.startswith("Redis commands per post") for label in row)
