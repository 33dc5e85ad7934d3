import re
import zlib

import psycopg2
import pytest
import redis as redis_lib

from submission import erased_key
from tests.servers import PostgresServer, RedisServer
from web import create_app
from worker import db as worker_db
from worker.__main__ import build_worker
from worker.config import Config as WorkerConfig
from worker.erasure import SECOND_PASS_KEY
from worker.migrate import apply_roles, apply_schema, migrate


@pytest.fixture(scope="session")
def pg_server():
    server = PostgresServer()
    yield server
    server.destroy()


@pytest.fixture(scope="session")
def redis_server():
    server = RedisServer()
    yield server
    server.destroy()


@pytest.fixture(scope="session")
def database_url(pg_server):
    url = pg_server.create_database("survey")
    apply_schema(url, WorkerConfig.from_env({}).schema_path)
    # The roles: on this trusting cluster the web switches the auditor's sign-in off (auditor_env has one that works).
    apply_roles(url, WorkerConfig.from_env({}).roles_path)
    return url


def empty_table(database_url):
    conn = psycopg2.connect(database_url)
    with conn, conn.cursor() as cur:
        cur.execute("TRUNCATE answers.cats, erasures")
    conn.close()


@pytest.fixture
def env(database_url, redis_server, monkeypatch):
    """A clean database and Redis, and the environment the services read."""
    empty_table(database_url)
    redis_lib.Redis.from_url(redis_server.url).flushall()
    # MIN_FILL_SECONDS=0: the tests post a form the moment they get it (test_bots.py times it).
    values = {"DATABASE_URL": database_url, "REDIS_URL": redis_server.url, "SECRET_KEY": "test-secret",
              "MIN_FILL_SECONDS": "0"}
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    worker_db.configure(database_url)
    yield values
    worker_db.discard()


@pytest.fixture
def app(env):
    app = create_app({"TESTING": True})
    return app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def redis(env):
    return redis_lib.Redis.from_url(env["REDIS_URL"])


@pytest.fixture
def rows(env):
    """rows() -> every stored row, as dicts, oldest first."""
    def fetch():
        conn = psycopg2.connect(env["DATABASE_URL"])
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT name, coat, donut, submission_id::text, submitted_at, stored_at FROM cats ORDER BY stored_at")
                names = [c.name for c in cur.description]
                return [dict(zip(names, r)) for r in cur.fetchall()]
        finally:
            conn.close()
    return fetch


@pytest.fixture
def run_worker(env, redis):
    """Run the real worker in burst mode until the queue is empty."""
    def run():
        config = WorkerConfig.from_env(env)
        return build_worker(config, redis).work(burst=True, with_scheduler=False)
    return run


def waiting(app):
    """What QUEUE_MAX_DEPTH counts: the web's jobs queued, on RQ's intermediate
    list, held by a worker, or waiting out a retry's back-off."""
    queue = app.extensions["submission_queue"]
    return sum(queue.redis.llen(key) for key in queue.waiting[:2]) + sum(
        queue.redis.zcard(key) for key in queue.waiting[2:])


def redis_holding(redis, text, whole=False):
    """Every key whose name or value holds `text` (a cat's name); whole=True:
    whose last name part or one of whose elements is `text` (a job id, not
    the erase job's id that contains it)."""
    readers = {
        b"string": lambda k: [redis.get(k)],
        b"hash": lambda k: [b for pair in redis.hgetall(k).items() for b in pair],
        b"list": lambda k: redis.lrange(k, 0, -1),
        b"set": lambda k: list(redis.smembers(k)),
        b"zset": lambda k: redis.zrange(k, 0, -1),
        b"stream": lambda k: [b for _, fields in redis.xrange(k) for pair in fields.items() for b in pair],
    }
    needle = text.encode()

    def holds(value):
        try:
            value = zlib.decompress(value)  # RQ compresses a job's data, its arguments
        except zlib.error:
            pass
        return value == needle if whole else needle in value
    return sorted(key.decode() for key in redis.scan_iter(count=1000)
                  if holds(key.split(b":")[-1] if whole else key)
                  or any(holds(v or b"") for v in readers.get(redis.type(key), lambda k: [])(key)))


def store_job_gone(redis, sid, name):
    """An erased submission's store job left Redis: no job hash, no queue or
    registry entry, no result, and its answers, by the cat's `name`, are nowhere."""
    assert not redis.exists(f"rq:job:{sid}")
    # The erasure's own bookkeeping names the id, and holds no answer.
    bookkeeping = {erased_key(sid), SECOND_PASS_KEY}
    assert [key for key in redis_holding(redis, sid, whole=True) if key not in bookkeeping] == []
    assert redis_holding(redis, name) == []
    return True


FIELD = re.compile(r'name="(csrf_token|submission_id|form_started)" type="hidden" value="([^"]*)"')


def hidden_fields(html):
    return dict(FIELD.findall(html))


@pytest.fixture
def fresh_form(client):
    """GET the form; return its hidden fields (CSRF token and submission id)."""
    def get():
        response = client.get("/")
        assert response.status_code == 200
        return hidden_fields(response.get_data(as_text=True))
    return get


@pytest.fixture
def post_form(client, fresh_form):
    """POST a submission through the real form; fields override the defaults."""
    def post(hidden=None, **fields):
        data = dict(hidden or fresh_form())
        data.update({"name": "Pika", "coat": "tortie", "donut": "strawberry"})
        data.update(fields)
        data = {k: v for k, v in data.items() if v is not None}
        return client.post("/", data=data)
    return post


AUDITOR_PASSWORD = "correct horse battery staple"
# HTTP Basic for the auditor, on the cluster that asks passwords (auditor_env).
AUDITOR = ("auditor", AUDITOR_PASSWORD)


@pytest.fixture(scope="session")
def password_pg():
    """A cluster that asks every TCP connection for a password, as make run's
    and compose's do: the web refuses the auditor's sign-in on one that does not."""
    server = PostgresServer(passwords=True)
    yield server
    server.destroy()


def auditor_database(server, name):
    """A new database on `server` with the schema and roles, the auditor's password AUDITOR_PASSWORD."""
    url = server.create_database(name)
    migrate(WorkerConfig.from_env({"DATABASE_URL": url, "AUDITOR_DATABASE_PASSWORD": AUDITOR_PASSWORD}))
    return url


@pytest.fixture(scope="session")
def auditor_database_url(password_pg):
    return auditor_database(password_pg, "survey")


@pytest.fixture
def auditor_env(env, auditor_database_url, monkeypatch):
    """env, but on the cluster that asks passwords, where the auditor signs in with AUDITOR."""
    empty_table(auditor_database_url)
    monkeypatch.setenv("DATABASE_URL", auditor_database_url)
    worker_db.configure(auditor_database_url)
    return {**env, "DATABASE_URL": auditor_database_url}


# The slow tiers, which `make test-fast` leaves out (pytest -m "not slow"):
# each test under one of these paths gets the tier's marker and `slow`.
SLOW_TIERS = {
    "tests/compose/test_compose_live.py": "docker",
    "tests/browser/": "chromium",
    "tests/test_bench.py": "bench",
    "tests/rq_suite/": "rq_suite",
    # Minutes of waiting out RQ's timeouts and restarts (README, "Test it").
    "tests/faults/": "faults",
    "tests/test_runner.py": "runner",
    # A million rows exported, and clients held until nginx drops them at 10 s.
    "tests/test_long_export.py": "long",
    "tests/test_proxy.py::test_slow_clients_do_not_stop_a_visitor": "long",
    # The store and delivery workers as processes, and a receiver's retries.
    **{f"tests/test_webhooks.py::{name}": "webhooks" for name in (
        "test_every_stored_answer", "test_no_2xx", "test_an_answer_erased", "test_a_private_address",
        "test_the_owner_is_emailed", "test_a_retry_after")},
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        path = item.path.relative_to(config.rootpath).as_posix()
        tiers = [tier for prefix, tier in SLOW_TIERS.items()
                 if path.startswith(prefix) or item.nodeid.startswith(prefix)]
        # checkov runs once per session, for the tests that ask for its findings.
        if "checkov_findings" in getattr(item, "fixturenames", ()):
            tiers.append("checkov")
        for tier in tiers:
            item.add_marker(tier)
            item.add_marker("slow")
