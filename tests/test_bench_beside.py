"""bench/beside.py: REV's bench gets the same options less --beside, and the
table lines up each figure of both runs, '-' where one run lacks it."""

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
            "visits": {"capacity": capacity, "probes": [probe], "overload": None}}


def test_each_figure_is_beside_its_old_one():
    before = record(134)  # a commit from before the per-route counters
    after = record(160, routes={"form": 1012.0, "post": 1445.0}, ours=750)
    lines = beside.table("e452b0f", before, after, 1).splitlines()
    row = {line[:64].strip(): line[64:].split() for line in lines[2:]}
    assert row["visitors/s at capacity (post p99 < 200 ms, nothing failed)"] == ["134", "160"]
    assert row["the web's CPU per visit, form, us"] == ["-", "1012"]
    assert row["ours / naive"] == ["0.50", "0.75"]
    # Steps neither run took are left out.
    assert not any(label.startswith("Redis commands") for label in row)
