"""The erase-versus-store ordering (db/schema.sql) needs READ COMMITTED: the
worker pins it whatever its role's default, the trigger refuses any other
level, and the exports and tallies leave out a tombstoned id whatever holds it."""

import threading
import uuid

import psycopg2
import pytest

import survey

from web.store import Store
from worker import db as worker_db
from worker import erasure, jobs
from worker.config import Config
from worker.migrate import migrate

INSERT = "INSERT INTO answers.cats (submission_id, name, coat, donut, submitted_at) VALUES (%s, 'Rex', 'tabby', 'glazed', now())"


@pytest.fixture
def repeatable_read_db(pg_server):
    """A database whose worker role defaults to REPEATABLE READ, as some managed servers and DBAs set."""
    name = f"isolation_{uuid.uuid4().hex[:8]}"
    url = pg_server.create_database(name)
    migrate(Config.from_env({"DATABASE_URL": url}))
    owner = psycopg2.connect(url)
    owner.autocommit = True
    with owner.cursor() as cur:
        # In this database only: the role is the cluster's, shared with the other tests.
        cur.execute(f"ALTER ROLE survey_worker IN DATABASE {name} SET default_transaction_isolation = 'repeatable read'")
    yield url, url.replace("://survey@", "://survey_worker@", 1), owner
    with owner.cursor() as cur:
        cur.execute(f"ALTER ROLE survey_worker IN DATABASE {name} RESET default_transaction_isolation")
    owner.close()
    worker_db.discard()


def submission(sid):
    return {"id": sid, "name": "Rex", "coat": "tabby", "donut": "glazed",
            "submitted_at": "2026-01-01T00:00:00+00:00", "version": 1}


def test_the_trigger_refuses_to_store_or_erase_under_repeatable_read(repeatable_read_db):
    _, worker_url, _ = repeatable_read_db
    conn = psycopg2.connect(worker_url)  # not the worker's own: its role's default applies
    try:
        for statement in (INSERT, "SELECT erase_submissions(ARRAY[%s]::uuid[])"):
            with pytest.raises(psycopg2.errors.RaiseException, match="only under READ COMMITTED, not repeatable read"):
                with conn, conn.cursor() as cur:
                    cur.execute(statement, (str(uuid.uuid4()),))
    finally:
        conn.close()


def test_a_store_waiting_on_an_erase_stays_erased_under_a_repeatable_read_role(repeatable_read_db, redis):
    url, worker_url, owner = repeatable_read_db
    worker_db.configure(worker_url)
    sid = str(uuid.uuid4())
    eraser = psycopg2.connect(url)
    with eraser.cursor() as cur:
        # The erase holds its lock on the id's bucket, uncommitted...
        cur.execute("SELECT erase_submissions(ARRAY[%s]::uuid[])", (sid,))
        store = threading.Thread(target=jobs.store_submission, args=(submission(sid),))
        store.start()
        store.join(1)
        assert store.is_alive()  # ...and the store waits on it
    eraser.commit()
    eraser.close()
    store.join(10)
    assert not store.is_alive()
    with owner.cursor() as cur:
        cur.execute("SELECT count(*) FROM cats WHERE submission_id = %s", (sid,))
        assert cur.fetchone()[0] == 0
        cur.execute("SELECT count(*) FROM erasures WHERE submission_id = %s", (sid,))
        assert cur.fetchone()[0] == 1
    # And the worker's connection still stores and erases under that role.
    other = str(uuid.uuid4())
    jobs.store_submission(submission(other))
    assert erasure.erase_submission(other, connection=redis) == {"erased": True}


def test_the_exports_and_tallies_leave_out_a_tombstoned_id(repeatable_read_db):
    url, _, owner = repeatable_read_db
    kept, erased = str(uuid.uuid4()), str(uuid.uuid4())
    with owner.cursor() as cur:
        cur.execute(INSERT, (kept,))
        cur.execute(INSERT, (erased,))
        # As a store that ran under the wrong level would have left it: the row and its tombstone.
        cur.execute("INSERT INTO erasures (submission_id) VALUES (%s)", (erased,))
    store = Store(url)
    cats = survey.load()
    columns, rows = store.export_rows(cats)
    assert [str(row[0]) for row in rows] == [kept]
    assert store.tallies(cats, store.questions(cats))["total"] == 1
