"""The real processes: gunicorn with several workers adds up their counters,
and `python -m worker` serves its own metrics; both log JSON lines that carry
the submission id."""

import json
import os
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request

import pytest

from submission import logref
from tests.gunicorn import Gunicorn
from tests.http import Browser
from tests.scrape import samples, value
from tests.servers import ROOT, free_port, wait_until

ACCEPTED = "survey_submissions_accepted_total"


@pytest.fixture
def gunicorn(env, tmp_path):
    started = []

    def start(metrics_dir):
        started.append(Gunicorn(env, tmp_path, metrics_dir))
        return started[-1]

    yield start
    for server in started:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait(30)


def pids_with_counts(metrics_dir):
    return {int(p.stem.rsplit("_", 1)[1]) for p in metrics_dir.glob("counter_*.db")}


def post_many(server, n, threads=4):
    """n valid posts from a few threads at once, so several gunicorn workers take them."""
    results = []

    def run(count):
        browser = Browser(f"http://127.0.0.1:{server.port}")
        for _ in range(count):
            results.append(browser.submit(name="Pika", coat="tortie", donut="glazed")[0])

    workers = [threading.Thread(target=run, args=(n // threads,)) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(60)
    assert results == [303] * (n // threads * threads)
    return len(results)


def test_gunicorn_workers_counts_add_up(gunicorn, tmp_path):
    metrics_dir = tmp_path / "metrics"
    server = gunicorn(metrics_dir)
    # The app's listener, where the proxy sends visitors, has no /metrics,
    # whatever host and port a visitor's headers name.
    assert server.browser.request("/metrics")[0] == 404
    spoof = urllib.request.Request(f"http://127.0.0.1:{server.port}/metrics",
                                   headers={"X-Forwarded-Host": f"127.0.0.1:{server.metrics_port}"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(spoof, timeout=10)
    assert refused.value.code == 404
    posted = post_many(server, 24)
    # Until more than one worker has counted, there is nothing to add up.
    while len(pids_with_counts(metrics_dir)) < 2 and posted < 200:
        posted += post_many(server, 8)
    assert len(pids_with_counts(metrics_dir)) >= 2

    # Whichever worker answers the scrape, it reports every worker's posts.
    for _ in range(6):
        now = server.scrape()
        assert value(now, ACCEPTED, enqueue="queued") == posted
        assert value(now, "survey_enqueue_seconds_count") == posted
        assert value(now, "survey_queue_depth", queue="submissions") == posted

    # A worker dies: what it counted still counts, and its replacement adds to it.
    victim = sorted(pids_with_counts(metrics_dir))[0]
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: victim not in _children(server.proc.pid) and len(_children(server.proc.pid)) == 3,
               30, "gunicorn to replace its worker")
    posted += post_many(server, 4)
    assert value(server.scrape(), ACCEPTED, enqueue="queued") == posted

    # One line per event, JSON, with the submission's reference (never its id) to follow it by.
    lines = server.log_lines()
    queued = [line for line in lines if line.get("logger") == "web.views" and line["message"].endswith(" queued")]
    assert len(queued) == posted
    assert all(line["submission"].startswith("ref-") and line["submission"] in line["message"] for line in queued)
    assert not any(logref.UUID.search(json.dumps(line)) for line in lines)
    access = [line for line in lines if line.get("logger") == "gunicorn.access" and line.get("path") == "/"]
    assert {line["method"] for line in access} == {"GET", "POST"}
    server.stop()

    # The next start begins at zero: last run's files are cleared.
    server = gunicorn(metrics_dir)
    assert value(server.scrape(), ACCEPTED, enqueue="queued") == 0


def _children(pid):
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return {int(p) for p in out.split()}


def test_worker_serves_its_metrics_and_logs_json(env, client, post_form, fresh_form, tmp_path):
    port = free_port()
    log_path = tmp_path / "worker.log"
    worker_env = {**os.environ, **env, "WORKER_METRICS_PORT": str(port), "LOG_FORMAT": "json",
                  # As make run passes it on: the worker must not join the web's files.
                  "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-m", "worker"], cwd=ROOT, env=worker_env,
                            stdout=open(log_path, "wb"), stderr=subprocess.STDOUT)
    try:
        def worker_metrics():
            assert proc.poll() is None, log_path.read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
                    return samples(response.read().decode())
            except OSError:
                return None

        assert value(wait_until(worker_metrics, 60, "the worker's metrics"), "survey_worker_jobs_total",
                     outcome="stored") == 0
        hidden = fresh_form()
        post_form(hidden)
        sid = hidden["submission_id"]
        wait_until(lambda: value(worker_metrics(), "survey_worker_jobs_total", outcome="stored") == 1,
                   30, "the job to be counted")
        assert value(worker_metrics(), "survey_worker_submitted_to_stored_seconds_count") == 1
        assert not list(tmp_path.glob("*.db"))
    finally:
        proc.terminate()
        proc.wait(30)
    assert sid not in log_path.read_text()
    lines = [json.loads(line) for line in log_path.read_text().splitlines()]
    about = [line for line in lines if line.get("submission") == logref.ref(sid)]
    # RQ's own lines (job started, job OK) and ours (stored) all carry its reference.
    assert {line["logger"] for line in about} >= {"rq.worker", "worker.jobs"}
    assert any(line["message"] == f"submission {logref.ref(sid)} stored" for line in about)
