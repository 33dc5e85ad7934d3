"""Fixtures for fault injection: the real worker (and web) as separate
processes that a test can SIGTERM or SIGKILL by PID, with their logs kept, and
servers that are always back up when a test ends.

Every process serves two surveys, as a deployment with SURVEYS_DIR does: the
cat one at / and tests/surveys.py's every-type one at /s/pets.  A test that
takes the `survey` fixture runs on the cat survey; parametrized with
SURVEYS (indirect), on both."""

import os
import signal
import subprocess
import sys
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone

import psycopg2
import pytest
from rq import Queue, Worker
from rq.registry import FailedJobRegistry
from rq.serializers import JSONSerializer

import survey as surveys_
import submission as payload
from tests import surveys as test_surveys
from tests.conftest import hidden_fields
from tests.http import Browser
from tests.servers import ROOT, free_port, wait_until
from web import create_app
from worker.config import Config as WorkerConfig
from worker.migrate import apply_schema

# Short back-off and a quick maintenance tick, so a fault heals in seconds.
FAST = {
    "WORKER_MAINTENANCE_INTERVAL": "1",
    "WORKER_TTL": "17",  # idle workers wake every 2 s, so maintenance runs that often
    "JOB_RETRY_INTERVALS": "1,1,1,2,2,2,3,3,3,3",
    "LOG_LEVEL": "INFO",
    "PYTHONUNBUFFERED": "1",
}


class Process:
    """A child we started, in its own process group: signals go to its PID,
    and cleanup takes its whole group (RQ's scheduler is a forked child that
    outlives a SIGKILLed worker)."""

    def __init__(self, name, argv, env, log_path):
        self.name = name
        self.log_path = log_path
        self.log_file = open(log_path, "ab")
        self.proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=self.log_file,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.pid = self.proc.pid

    def log(self):
        return self.log_path.read_text(errors="replace")

    def alive(self):
        return self.proc.poll() is None

    def signal(self, sig):
        os.kill(self.pid, sig)

    def wait(self, timeout):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} [{self.pid}] still running after {timeout}s:\n{self.log()[-3000:]}")

    def cleanup(self):
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(30)
        self.log_file.close()


def as_role(url, role):
    return url.replace("://survey@", f"://{role}@", 1)


class Survey:
    """A survey the fault tests post to: where its form is, its table, and
    what a visitor answers (`name` fills its first short text)."""

    def __init__(self, loaded, path, answers, text):
        self.loaded, self.path, self.answers, self.text = loaded, path, answers, text
        self.table = loaded.table

    def form(self, name=None, **fields):
        data = {**self.answers, **({self.text: name} if name else {}), **fields}
        return {k: v for k, v in data.items() if v is not None}

    def payload(self, name=None):
        """A job's payload for this survey, as the web builds it."""
        form = self.form(name)
        posted = {q: form[q.id] if isinstance(form[q.id], list) else [form[q.id]]
                  for q in self.loaded.questions if q.id in form}
        answers = {q.id: q.clean(values) for q, values in posted.items()}
        return payload.build(str(uuid.uuid4()), self.loaded, answers, datetime.now(timezone.utc))


SURVEYS = ["cats", "pets"]


@pytest.fixture(scope="session")
def surveys_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("surveys")
    test_surveys.write(folder, test_surveys.EVERY_TYPE, name="pets.toml")
    return folder


@pytest.fixture
def env(env, surveys_dir, monkeypatch):
    """The root env, with the second survey's folder and its table, emptied."""
    pets = surveys_.load_folder(surveys_dir)["pets"]
    apply_schema(env["DATABASE_URL"], WorkerConfig.from_env({}).schema_path, surveys=[surveys_.load(), pets])
    conn = psycopg2.connect(env["DATABASE_URL"])
    with conn, conn.cursor() as cur:
        cur.execute("TRUNCATE answers.pets")
    conn.close()
    monkeypatch.setenv("SURVEYS_DIR", str(surveys_dir))
    return {**env, "SURVEYS_DIR": str(surveys_dir)}


@pytest.fixture
def survey(request, env, surveys_dir):
    if getattr(request, "param", "cats") == "cats":
        return Survey(surveys_.load(), "/", {"name": "Pika", "coat": "tortie", "donut": "strawberry"}, "name")
    return Survey(surveys_.load_folder(surveys_dir)["pets"], "/s/pets", test_surveys.EVERY_ANSWER, "cat_name")


@pytest.fixture
def fresh_form(client, survey):
    """GET the survey's form; return its hidden fields (CSRF token and submission id)."""
    def get():
        response = client.get(survey.path)
        assert response.status_code == 200
        return hidden_fields(response.get_data(as_text=True))
    return get


@pytest.fixture
def post_form(client, fresh_form, survey):
    """POST an answer to the survey's form; `name` fills its short text, fields override."""
    def post(hidden=None, name=None, **fields):
        return client.post(survey.path, data={**(hidden or fresh_form()), **survey.form(name, **fields)})
    return post


@pytest.fixture
def fault_env(env):
    """The environment of every process a fault test starts: each service
    connects as its least-privileged role (the worker creates them on start)."""
    return {**os.environ, **env, **FAST,
            "WORKER_DATABASE_URL": as_role(env["DATABASE_URL"], "survey_worker"),
            "WEB_DATABASE_URL": as_role(env["DATABASE_URL"], "survey_web")}


@pytest.fixture
def app(env, monkeypatch):
    """The web app, with the same fast retries as the processes."""
    for key, value in FAST.items():
        monkeypatch.setenv(key, value)
    return create_app({"TESTING": True})


@pytest.fixture
def processes(tmp_path):
    started = []
    yield started
    for proc in started:
        proc.cleanup()


@pytest.fixture
def start_worker(fault_env, processes, redis, tmp_path):
    """start_worker(**env) -> a running `python -m worker` (or another module), registered in Redis."""
    def start(module="worker", **env):
        name = f"worker{len(processes) + 1}"
        proc = Process(name, [sys.executable, "-m", module], {**fault_env, **env}, tmp_path / f"{name}.log")
        processes.append(proc)

        def registered():
            assert proc.alive(), f"{name} exited:\n{proc.log()[-3000:]}"
            return any(w.pid == proc.pid for w in Worker.all(connection=redis))

        wait_until(registered, 60, f"{name} to register", interval=0.1)
        return proc
    return start


@pytest.fixture
def start_web(fault_env, processes, tmp_path):
    """start_web(**env) -> (Process, Browser) for gunicorn serving the real app."""
    def start(**env):
        port = free_port()
        full_env = {**fault_env, "APP_PORT": str(port), "WEB_METRICS_PORT": str(free_port()), "WEB_CONCURRENCY": "4", **env}
        proc = Process("web", [sys.executable, "-m", "gunicorn", "--config", "web/gunicorn.conf.py"],
                       full_env, tmp_path / "web.log")
        processes.append(proc)
        browser = Browser(f"http://127.0.0.1:{port}")

        def up():
            assert proc.alive(), f"gunicorn exited:\n{proc.log()[-3000:]}"
            try:
                return browser.request("/healthz", timeout=2)[0] == 200
            except OSError:
                return False

        wait_until(up, 60, "gunicorn", interval=0.2)
        return proc, browser
    return start


@contextmanager
def postgres_down(pg_server):
    """Stop the session's PostgreSQL; whatever happens, it is running again afterwards."""
    pg_server.stop("fast")
    try:
        yield
    finally:
        _ensure_postgres(pg_server)


def _ensure_postgres(pg_server):
    try:
        psycopg2.connect(pg_server.url(), connect_timeout=2).close()
    except psycopg2.OperationalError:
        pg_server.start()


@contextmanager
def redis_down(redis_server):
    """Stop the session's Redis (SIGTERM, flushing its append-only file); it is
    running again afterwards, with the same port and data."""
    redis_server.stop()
    try:
        yield
    finally:
        if redis_server.proc.poll() is not None:
            redis_server.start()


@pytest.fixture
def pg_restored(pg_server):
    """For tests that stop PostgreSQL themselves: make sure it is back up after."""
    yield pg_server
    _ensure_postgres(pg_server)


@pytest.fixture
def redis_restored(redis_server):
    yield redis_server
    try:
        os.kill(redis_server.proc.pid, signal.SIGCONT)
    except ProcessLookupError:
        pass
    if redis_server.proc.poll() is not None:
        redis_server.start()


def submission(**fields):
    return {"id": str(uuid.uuid4()), "name": "Pika", "coat": "tortie", "donut": "glazed",
            "submitted_at": datetime.now(timezone.utc).isoformat(), **fields}


def queue(redis):
    return Queue("submissions", connection=redis, serializer=JSONSerializer)


def failed(redis):
    return FailedJobRegistry("submissions", connection=redis, serializer=JSONSerializer)


@pytest.fixture
def stored_ids(env, survey):
    """stored_ids() -> every submission id in the survey's table, as a list (duplicates would show)."""
    def fetch():
        conn = psycopg2.connect(env["DATABASE_URL"], connect_timeout=2)
        try:
            with conn.cursor() as cur:
                cur.execute(f"SELECT submission_id::text FROM answers.{survey.table}")
                return [r[0] for r in cur.fetchall()]
        finally:
            conn.close()
    return fetch


@pytest.fixture
def accounted(env, stored_ids, survey):
    """accounted(accepted, erased=()): nothing lost, doubled, or brought back.

    Every accepted submission not erased is exactly one row; every erased
    one is no row and exactly one tombstone."""
    def check(accepted, erased=()):
        ids, erased = stored_ids(), set(erased)
        assert sorted(ids) == sorted(set(accepted) - erased), "lost or doubled"
        conn = psycopg2.connect(env["DATABASE_URL"], connect_timeout=2)
        try:
            with conn.cursor() as cur:
                # An erase records the table it erased from; none is the cat survey's (an older release's).
                cur.execute("SELECT submission_id::text FROM erasures WHERE coalesce(survey_table, 'cats') = %s",
                            (survey.table,))
                tombstones = [r[0] for r in cur.fetchall()]
        finally:
            conn.close()
        assert sorted(tombstones) == sorted(erased), "an erase without its tombstone"
        assert not erased & set(ids), "brought back"
    return check


@pytest.fixture
def row_lock(env, survey):
    """row_lock(id) -> an open transaction that inserted `id` without committing.

    A worker storing the same submission waits on it, so the test holds the
    worker in the middle of its job for as long as it likes; rollback() lets
    the worker's insert through."""
    conns = []

    def lock(submission_id):
        conn = psycopg2.connect(env["DATABASE_URL"])
        conns.append(conn)
        with conn.cursor() as cur:
            if survey.table == "cats":  # its questions are NOT NULL, as an earlier release made them
                cur.execute("INSERT INTO answers.cats (submission_id, name, coat, donut, submitted_at) "
                            "VALUES (%s, 'lock', 'lock', 'lock', now())", (submission_id,))
            else:
                cur.execute(f"INSERT INTO answers.{survey.table} (submission_id, submitted_at) VALUES (%s, now())",
                            (submission_id,))
        return conn

    yield lock
    for conn in conns:
        conn.close()


@pytest.fixture
def waiting_on_lock(env):
    """waiting_on_lock(n) -> true once n worker backends wait on a lock."""
    def count(n):
        conn = psycopg2.connect(env["DATABASE_URL"])
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                            "AND application_name = 'survey-worker'")
                return cur.fetchone()[0] >= n
        finally:
            conn.close()
    return count
