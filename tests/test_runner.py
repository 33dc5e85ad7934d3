"""`make run`, as the README says, starts the whole pipeline: a real HTTP POST ends as a row."""

import os
import shutil
import tempfile
from pathlib import Path
import signal
import subprocess
import uuid

import psycopg2
import pytest

from tests.http import Browser
from tests.scrape import samples, value
from tests.servers import ROOT, free_port, wait_until


def stored(database_url, submission_id):
    try:
        conn = psycopg2.connect(database_url, connect_timeout=2)
    except psycopg2.OperationalError:
        return None
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT name, coat, donut FROM cats WHERE submission_id = %s", (submission_id,))
            return cur.fetchall()
    except psycopg2.Error:
        return None
    finally:
        conn.close()


class Runner:
    def __init__(self, tmp_path, **env):
        self.port = free_port()
        # Like a checkout in a shared folder: reachable by the postgres user.
        data_dir = Path(tempfile.mkdtemp(prefix="survey-run-"))
        data_dir.chmod(0o755)
        self.data_dir = data_dir
        self.log = open(tmp_path / "run.log", "wb")
        self.env = {**os.environ, "DATA_DIR": str(data_dir), "PORT": str(self.port),
                    "DB_PORT": str(free_port()), "REDIS_PORT": str(free_port()),
                    "WORKER_METRICS_PORT": str(free_port()), **env}
        for key in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "PROMETHEUS_MULTIPROC_DIR"):
            if key not in env:
                self.env.pop(key, None)
        self.log_path = tmp_path / "run.log"
        self.proc = None

    def start(self):
        # Its own process group, so the test can press "Ctrl-C" on the whole of it.
        self.proc = subprocess.Popen(["make", "run"], cwd=ROOT, env=self.env, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        browser = Browser(f"http://127.0.0.1:{self.port}")

        def ready():
            assert self.proc.poll() is None, self.log_path.read_text()[-3000:]
            try:
                return browser.request("/readyz", timeout=2)[0] == 200
            except OSError:
                return False

        wait_until(ready, 120, "make run to answer /readyz", interval=0.3)
        return browser

    def interrupt(self):
        os.killpg(self.proc.pid, signal.SIGINT)
        return self.proc.wait(60)

    def kill(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)


@pytest.fixture
def runner(tmp_path):
    runners = []

    def make(**env):
        runners.append(Runner(tmp_path, **env))
        return runners[-1]

    yield make
    for r in runners:
        r.kill()
        shutil.rmtree(r.data_dir, ignore_errors=True)


def test_make_run_stores_a_post_and_keeps_it_across_restarts(runner):
    run = runner()
    browser = run.start()
    database_url = f"postgresql://survey@127.0.0.1:{run.env['DB_PORT']}/survey"

    status, headers, _, sid = browser.submit(name="Pika", coat="tortie", donut="strawberry")
    assert status == 303, headers
    assert wait_until(lambda: stored(database_url, sid), 30, "the row") == [("Pika", "tortie", "strawberry")]
    receipt = browser.request(f"/submissions/{sid}.json")
    assert '"state":"stored"' in receipt[2]
    # The operator's views: the web's counters (kept under DATA_DIR), the worker's own.
    assert value(samples(browser.request("/metrics")[2]), "survey_submissions_accepted_total", enqueue="queued") == 1
    assert list((run.data_dir / "web-metrics").glob("*.db"))
    worker = Browser(f"http://127.0.0.1:{run.env['WORKER_METRICS_PORT']}")
    assert value(samples(worker.request("/metrics")[2]), "survey_worker_jobs_total", outcome="stored") == 1

    assert run.interrupt() is not None, "make run did not stop on Ctrl-C"
    # Everything it started has stopped: its ports are free again.
    assert stored(database_url, sid) is None

    # The data directory survives: start again, the row is still there.
    browser = run.start()
    assert stored(database_url, sid) == [("Pika", "tortie", "strawberry")]
    run.interrupt()


def test_make_run_uses_given_servers_and_applies_the_schema(runner, pg_server, redis_server):
    database_url = pg_server.create_database(f"given_{uuid.uuid4().hex[:8]}")  # empty: no table yet
    run = runner(DATABASE_URL=database_url, REDIS_URL=redis_server.url)
    browser = run.start()
    status, _, _, sid = browser.submit(name="Tom", coat="grey", donut="maple")
    assert status == 303
    assert wait_until(lambda: stored(database_url, sid), 30, "the row") == [("Tom", "grey", "maple")]
    log = run.log_path.read_text()
    assert "db.1" not in log and "redis.1" not in log  # it started no servers of its own
    run.interrupt()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root's checkouts can be out of the postgres user's reach")
def test_make_run_as_root_with_a_private_data_dir(runner, tmp_path):
    # tmp_path is 0700 and root's, like a checkout under /root.
    run = runner(DATA_DIR=str(tmp_path / "data"))
    browser = run.start()
    database_url = f"postgresql://survey@127.0.0.1:{run.env['DB_PORT']}/survey"
    status, _, _, sid = browser.submit(name="Kit", coat="black", donut="glazed")
    assert status == 303
    assert wait_until(lambda: stored(database_url, sid), 30, "the row") == [("Kit", "black", "glazed")]
    link = tmp_path / "data" / "postgres"
    assert link.is_symlink()
    run.interrupt()
    shutil.rmtree(link.resolve())
