"""The web's PostgreSQL pool (web/store.py): each process keeps
WEB_DB_POOL_SIZE connections instead of opening one per query, never shares
one with another process, and drops the ones a PostgreSQL restart broke."""

import fcntl
import os
import uuid

import psycopg2
import pytest

from web import config, create_app
from tests.test_results import insert


def web_sessions(database_url):
    """{backend pid: backend start} of the web's open sessions."""
    conn = psycopg2.connect(database_url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pid, backend_start FROM pg_stat_activity "
                        "WHERE application_name = 'survey-web' AND datname = current_database()")
            return dict(cur.fetchall())
    finally:
        conn.close()


def test_pool_size_setting(env):
    assert config.from_env({})["WEB_DB_POOL_SIZE"] == 1
    assert config.from_env({"WEB_DB_POOL_SIZE": "3"})["WEB_DB_POOL_SIZE"] == 3
    with pytest.raises(ValueError, match="WEB_DB_POOL_SIZE"):
        create_app({"WEB_DB_POOL_SIZE": 0})


def test_queries_reuse_the_pool_s_connections(env):
    # Other tests' apps may still hold sessions: count only this app's.
    others = web_sessions(env["DATABASE_URL"])
    client = create_app({"TESTING": True, "WEB_DB_POOL_SIZE": 2}).test_client()
    assert web_sessions(env["DATABASE_URL"]) == others  # nothing opened before the first query
    [sid] = insert(env["DATABASE_URL"], [("Pika", "tortie", "glazed")])
    assert client.get(f"/submissions/{sid}.json").get_json()["state"] == "stored"
    mine = {pid: start for pid, start in web_sessions(env["DATABASE_URL"]).items() if pid not in others}
    assert len(mine) == 2
    for _ in range(10):
        assert client.get("/readyz").status_code == 200
        assert client.get("/results").status_code == 200
        assert client.get(f"/submissions/{sid}").status_code == 200
    # The same two sessions, still open: no connection per query.
    assert {pid: start for pid, start in web_sessions(env["DATABASE_URL"]).items() if pid not in others} == mine


def test_connections_broken_by_a_restart_are_replaced(env, pg_server):
    client = create_app({"TESTING": True}).test_client()
    [sid] = insert(env["DATABASE_URL"], [("Pika", "tortie", "glazed")])
    assert client.get(f"/submissions/{sid}.json").get_json()["state"] == "stored"
    before = web_sessions(env["DATABASE_URL"])
    pg_server.stop()
    pg_server.start()
    # The first request after the restart meets the pool's dead connections.
    receipt = client.get(f"/submissions/{sid}.json")
    assert receipt.status_code == 200 and receipt.get_json()["state"] == "stored"
    assert client.get("/results").status_code == 200
    assert client.get("/readyz").status_code == 200
    # The restart ended every session: these are the pool's new ones.
    after = web_sessions(env["DATABASE_URL"])
    assert 0 < len(after) <= 2 and not set(after) & set(before)


def test_a_forked_process_makes_its_own_pool(env):
    """As a gunicorn worker does after preload_app: the parent's sessions stay
    the parent's, usable after the child has come and gone."""
    app = create_app({"TESTING": True})
    client = app.test_client()
    assert client.get("/readyz").status_code == 200
    parent = web_sessions(env["DATABASE_URL"])
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(read)
            ok = app.test_client().get("/readyz").status_code == 200
            pids = app.extensions["submission_store"]._fetch("SELECT pg_backend_pid() AS pid")
            os.write(write, f"{int(ok)} {pids[0]['pid']}".encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    answer = os.read(read, 100).decode().split()
    os.close(read)
    assert os.waitpid(pid, 0)[1] == 0
    assert answer[0] == "1"
    assert int(answer[1]) not in parent
    assert client.get("/readyz").status_code == 200
    assert set(parent) <= set(web_sessions(env["DATABASE_URL"]))


def test_database_down_is_an_error_and_up_again_works(env, pg_server):
    client = create_app({"TESTING": True}).test_client()
    assert client.get("/readyz").get_json()["postgres"] == "ok"
    pg_server.stop()
    try:
        # Still ready (the form queues without PostgreSQL), but it says the database is away.
        assert client.get("/readyz").get_json()["postgres"] == "unavailable"
        assert client.get("/results").status_code == 503
        # The queue has no such job, and only the database could say whether it was stored.
        assert client.get(f"/submissions/{uuid.uuid4()}.json").get_json()["state"] == "unknown"
    finally:
        pg_server.start()
    assert client.get("/readyz").get_json()["postgres"] == "ok"
    assert client.get("/results").status_code == 200


def test_with_every_reader_slot_taken_pages_answer_without_the_database(env):
    """Another process holds the one slot (WEB_DB_READERS=1): the receipt and
    /results answer at once, without PostgreSQL, and the form is unaffected."""
    app = create_app({"TESTING": True, "WEB_DB_READERS": 1})
    client = app.test_client()
    [sid] = insert(env["DATABASE_URL"], [("Pika", "tortie", "glazed")])
    assert client.get(f"/submissions/{sid}.json").get_json()["state"] == "stored"
    with open(os.path.join(app.extensions["submission_store"].readers.directory, "0"), "a") as other:
        fcntl.flock(other, fcntl.LOCK_EX)  # a file of its own, as another process's would be
        assert client.get(f"/submissions/{sid}.json").get_json()["state"] == "unknown"
        assert client.get("/results").status_code == 503
        assert client.get("/readyz").get_json() == {"status": "ok", "redis": "ok", "postgres": "unavailable"}
        assert client.get("/").status_code == 200
    assert client.get(f"/submissions/{sid}.json").get_json()["state"] == "stored"
