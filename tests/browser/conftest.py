"""A live pipeline for the browser tests: the real gunicorn (the Procfile's web
line) and, when a scenario needs rows, the real worker (`python -m worker`),
both against the session's throwaway PostgreSQL and Redis; and one headless
Debian Chromium for the whole session, driven by Playwright."""

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import psycopg2
import pytest
from playwright.sync_api import expect, sync_playwright

import survey
from tests import surveys
from tests.servers import ROOT, free_port, wait_until
from worker.config import Config as WorkerConfig
from worker.migrate import apply_schema

HERE = Path(__file__).resolve().parent
CHROMIUM = "/usr/bin/chromium"
# Offline and in a container: no sandbox (we run as root), no GPU, and none of
# Chromium's own calls home.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
AXE = HERE / "node_modules" / "axe-core" / "axe.min.js"
ARTIFACTS = ROOT / "test-artifacts"
SCREENSHOTS = ARTIFACTS / "screenshots"
PHONE = {"width": 375, "height": 740}
DESKTOP = {"width": 1200, "height": 900}
# Patient with a busy two-core machine, still bounded.
expect.set_options(timeout=10_000)
# The venv's scripts, the way scripts/run puts them on the PATH of what it starts.
BIN = Path(sys.executable).parent


class Service:
    """A process of the pipeline, started and stopped by its PID, its output in a log file."""

    def __init__(self, name, argv, env):
        ARTIFACTS.mkdir(exist_ok=True)
        self.log_path = ARTIFACTS / f"browser-{name}.log"
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)

    def log_tail(self):
        return self.log_path.read_text(errors="replace")[-3000:]

    def running(self):
        assert self.proc.poll() is None, f"exited with {self.proc.returncode}:\n{self.log_tail()}"
        return True

    def stop(self):
        if self.proc.poll() is None:
            # SIGTERM: gunicorn and RQ both finish the request or job in hand.
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


@pytest.fixture(scope="session")
def live_env(pg_server, redis_server, tmp_path_factory):
    """The environment both services read: a database and a Redis database of their own,
    so the other tests' truncating and flushing never meet a live server's data;
    the cat survey at / and, from SURVEYS_DIR, one with every question type at /s/pets."""
    database_url = pg_server.create_database("browser")
    folder = tmp_path_factory.mktemp("surveys")
    surveys.write(folder, surveys.EVERY_TYPE, name="pets.toml")
    apply_schema(database_url, WorkerConfig.from_env({}).schema_path,
                 surveys=[survey.load(), *survey.load_folder(folder).values()])
    return {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        # Playwright fills the form in milliseconds, faster than MIN_FILL_SECONDS
        # lets a person (tests/test_survey.py checks that rule).
        "MIN_FILL_SECONDS": "0",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_server.url.rsplit("/", 1)[0] + "/1",
        "SECRET_KEY": "browser-test-secret",
        "LOG_LEVEL": "WARNING",
        "SURVEYS_DIR": str(folder),
    }


@pytest.fixture(scope="session")
def live_server(live_env):
    """The web exactly as the Procfile starts it; yields its base URL."""
    for old in ARTIFACTS.glob("browser-*.log"):
        old.unlink()
    port = free_port()
    env = {**live_env, "HOST": "127.0.0.1", "APP_PORT": str(port), "WEB_METRICS_PORT": str(free_port()),
           "WEB_CONCURRENCY": "2"}
    web = Service("web", ["gunicorn", "--config", "web/gunicorn.conf.py"], env)
    base_url = f"http://127.0.0.1:{port}"

    def ready():
        web.running()
        try:
            with urllib.request.urlopen(base_url + "/readyz", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    try:
        wait_until(ready, 60, "gunicorn to answer /readyz", interval=0.1)
        yield base_url
    finally:
        web.stop()


@pytest.fixture
def start_worker(live_env):
    """start_worker() runs `python -m worker` until the test ends."""
    workers = []

    def start():
        workers.append(Service("worker", [sys.executable, "-m", "worker"], live_env))
        return workers[-1]

    yield start
    for worker in workers:
        worker.stop()


@pytest.fixture
def stored_rows(live_env):
    """stored_rows(submission_id=None, name=None) -> matching rows as (name, coat, donut, submission_id)."""
    def fetch(submission_id=None, name=None):
        conn = psycopg2.connect(live_env["DATABASE_URL"])
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT name, coat, donut, submission_id::text FROM cats"
                    " WHERE (%(id)s IS NULL OR submission_id = %(id)s::uuid)"
                    " AND (%(name)s IS NULL OR name = %(name)s)",
                    {"id": submission_id, "name": name})
                return cur.fetchall()
        finally:
            conn.close()
    return fetch


@pytest.fixture(scope="session")
def chromium():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=60_000)
        yield browser
        browser.close()


@pytest.fixture
def open_page(chromium, live_server):
    """open_page(viewport=DESKTOP) -> a fresh page (own cookies) on the live server's form."""
    contexts = []

    def open_(viewport=DESKTOP, path="/"):
        context = chromium.new_context(base_url=live_server, viewport=viewport, locale="en-GB")
        # Bounded: a broken page fails in seconds, not at the suite's timeout.
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        page.goto(path)
        return page

    yield open_
    for context in contexts:
        context.close()


def axe_violations(page):
    """Run axe-core in the page; return its serious and critical violations."""
    # evaluate() runs as the debugger does, so a Content-Security-Policy cannot block it.
    page.evaluate(AXE.read_text())
    result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [
        {"id": v["id"], "impact": v["impact"], "help": v["help"],
         "nodes": [n["html"] for n in v["nodes"]]}
        for v in result["violations"] if v["impact"] in ("serious", "critical")
    ]


def screenshot(page, name):
    """Save the whole page as test-artifacts/screenshots/NAME.png, for people to look at."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True, animations="disabled")
