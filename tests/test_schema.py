"""db/schema.sql: idempotent, and its constraints back up the form's rules."""

import uuid

import psycopg2
import pytest

from web.forms import NAME_MAX
from worker.config import Config
from worker.migrate import apply_schema

SCHEMA = Config.from_env({}).schema_path


def insert(url, **overrides):
    values = {"id": str(uuid.uuid4()), "name": "Pika", "coat": "tortie", "donut": "glazed",
              "submitted_at": "2026-01-01T00:00:00Z", **overrides}
    conn = psycopg2.connect(url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("INSERT INTO cats (submission_id, name, coat, donut, submitted_at) "
                        "VALUES (%(id)s, %(name)s, %(coat)s, %(donut)s, %(submitted_at)s)", values)
    finally:
        conn.close()


def test_reapplying_the_schema_keeps_the_rows(env, rows):
    insert(env["DATABASE_URL"])
    apply_schema(env["DATABASE_URL"], SCHEMA)
    apply_schema(env["DATABASE_URL"], SCHEMA)
    assert len(rows()) == 1


def test_tutorial_columns_come_first(env):
    conn = psycopg2.connect(env["DATABASE_URL"])
    with conn.cursor() as cur:
        cur.execute("SELECT * FROM cats LIMIT 0")
        assert [c.name for c in cur.description][:3] == ["name", "coat", "donut"]
    conn.close()


@pytest.mark.parametrize("overrides", [
    {"name": ""},
    {"name": "x" * (NAME_MAX + 1)},
    {"name": None},
    {"coat": None},
    {"donut": "d" * 33},
    {"submitted_at": None},
])
def test_constraints_reject_what_the_form_rejects(env, rows, overrides):
    with pytest.raises(psycopg2.IntegrityError):
        insert(env["DATABASE_URL"], **overrides)
    assert rows() == []


def test_submission_id_is_unique(env):
    sid = str(uuid.uuid4())
    insert(env["DATABASE_URL"], id=sid)
    with pytest.raises(psycopg2.errors.UniqueViolation):
        insert(env["DATABASE_URL"], id=sid, name="Other")


def test_workers_starting_together_all_apply_the_schema(pg_server):
    """Three workers starting together on an empty database all apply the schema."""
    from concurrent.futures import ThreadPoolExecutor

    url = pg_server.create_database(f"race_{uuid.uuid4().hex[:8]}")
    with ThreadPoolExecutor(3) as pool:
        list(pool.map(lambda _: apply_schema(url, SCHEMA), range(3)))
    insert(url)


def _store_in_flight(url):
    """A store's transaction, open: it holds cats in ROW EXCLUSIVE, which
    re-creating a trigger (SHARE ROW EXCLUSIVE) would wait for."""
    conn = psycopg2.connect(url)
    with conn.cursor() as cur:
        cur.execute("INSERT INTO cats (submission_id, name, coat, donut, submitted_at) "
                    "VALUES (%s, 'Held', 'grey', 'maple', now())", (str(uuid.uuid4()),))
    return conn


def test_a_worker_start_with_the_same_schema_takes_no_lock_on_cats(pg_server):
    from worker.migrate import migrate

    url = pg_server.create_database(f"start_{uuid.uuid4().hex[:8]}")
    config = Config.from_env({"DATABASE_URL": url})
    migrate(config)
    held = _store_in_flight(url)
    try:
        migrate(config)  # returns at once: nothing to apply, the store goes on
        conn = psycopg2.connect(url)
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                        "WHERE c.relname = 'cats' AND NOT l.granted")
            assert cur.fetchone()[0] == 0
        conn.close()
    finally:
        held.rollback()
        held.close()


def test_a_changed_schema_gives_up_on_a_held_lock_and_is_tried_again(pg_server, tmp_path, monkeypatch):
    from worker import migrate as migration

    url = pg_server.create_database(f"changed_{uuid.uuid4().hex[:8]}")
    migration.migrate(Config.from_env({"DATABASE_URL": url}))
    changed = tmp_path / "schema.sql"
    changed.write_text(SCHEMA.read_text() + "\n-- a new release\n")
    config = Config.from_env({"DATABASE_URL": url, "SCHEMA_PATH": str(changed)})
    monkeypatch.setattr(migration, "LOCK_TIMEOUT_S", 1)
    held = _store_in_flight(url)
    try:
        with pytest.raises(psycopg2.errors.LockNotAvailable):
            migration.migrate(config)  # the worker's wait_for tries again
    finally:
        held.rollback()
        held.close()
    migration.migrate(config)
    insert(url)
