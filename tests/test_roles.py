"""db/roles.sql: least privilege.  The worker can only insert, and erase
through a function that leaves a tombstone; the web and the auditor can only read; applying it again changes nothing; passwords come
from the environment or files, never from the code, and reach no server log."""

import uuid

import psycopg2
import pytest

from psycopg2.extensions import make_dsn

import submission as payload
from submission.cap import held_query
from tests.servers import PostgresServer, statements_kept
from web import config as web_config
from worker.config import Config
from worker.migrate import apply_roles, apply_schema, migrate, set_passwords

SCHEMA = Config.from_env({}).schema_path
ROLES = Config.from_env({}).roles_path
WRITES = {
    "insert": "INSERT INTO cats (submission_id, name, coat, donut, submitted_at) VALUES (%s, 'x', 'y', 'z', now())",
    # The auditor's view of the answers, and the table under it (worker/tables.py).
    "update": "UPDATE cats SET name = 'Hacked'",
    "delete": "DELETE FROM cats",
    "drop": "DROP VIEW cats",
    "update table": "UPDATE answers.cats SET name = 'Hacked'",
    "delete table": "DELETE FROM answers.cats",
    "truncate": "TRUNCATE answers.cats",
    "drop table": "DROP TABLE answers.cats",
    "create": "CREATE TABLE sneaky (id int)",
    # A tombstone without the erase, or one taken back: the answer could come back.
    "tombstone": "INSERT INTO erasures (submission_id) VALUES (%s)",
    "untombstone": "DELETE FROM erasures",
    "erase": "SELECT erase_submissions(ARRAY[%s]::uuid[])",
}


@pytest.fixture(scope="module")
def roles_db(pg_server):
    url = pg_server.create_database(f"roles_{uuid.uuid4().hex[:8]}")
    migrate(Config.from_env({"DATABASE_URL": url}))
    owner = psycopg2.connect(url)
    with owner, owner.cursor() as cur:
        cur.execute(WRITES["insert"], (str(uuid.uuid4()),))
    owner.close()
    return url


def connect(url, role):
    conn = psycopg2.connect(url.replace("://survey@", f"://{role}@", 1))
    conn.autocommit = True
    return conn


def allowed(conn, statement):
    try:
        with conn.cursor() as cur:
            cur.execute(statement, (str(uuid.uuid4()),) if "%s" in statement else None)
        return True
    except psycopg2.errors.InsufficientPrivilege:
        return False


def test_worker_can_insert_idempotently_and_nothing_else(roles_db):
    conn = connect(roles_db, "survey_worker")
    from worker.jobs import inserts
    sub = {"id": str(uuid.uuid4()), "name": "Pika", "coat": "tortie", "donut": "glazed",
           "submitted_at": "2026-01-01T00:00:00Z"}
    ((insert, params),) = inserts([payload.parse(sub)])
    with conn.cursor() as cur:
        cur.execute(insert, params)
        assert cur.rowcount == 1
        cur.execute(insert, params)  # the retried job: ON CONFLICT still works
        assert cur.rowcount == 0
    assert not allowed(conn, "SELECT name FROM cats")  # it never needs to read the answers
    assert not allowed(conn, "SELECT name FROM answers.cats")
    for what in ("update", "delete", "drop", "update table", "delete table", "truncate", "drop table", "create",
                 "tombstone", "untombstone"):
        assert not allowed(conn, WRITES[what]), what
    # It deletes only through the function that leaves a tombstone.
    with conn.cursor() as cur:
        cur.execute("SELECT erase_submissions(ARRAY[%s]::uuid[])", (sub["id"],))
        assert cur.fetchone() == (1,)
        cur.execute(insert, params)  # and the erased answer cannot be stored again
        assert cur.rowcount == 0
        # The cap's reconcile asks which ids are in, rows or tombstones (submission/cap.py).
        cur.execute(held_query("cats"), ([sub["id"], str(uuid.uuid4())],))
        assert cur.fetchone()[0] == [sub["id"]]
    conn.close()


@pytest.mark.parametrize("role", ["survey_web", "auditor"])
def test_web_and_auditor_can_only_read(roles_db, role):
    conn = connect(roles_db, role)
    with conn.cursor() as cur:
        cur.execute("SELECT name, coat, donut, submission_id, submitted_at, stored_at FROM cats")
        assert len(cur.fetchall()) >= 1
        cur.execute("SELECT count(*) FROM erasures")  # the receipt's "erased", the auditor's count
    for what, statement in WRITES.items():
        assert not allowed(conn, statement), what
    conn.close()


def test_roles_are_plain_logins(roles_db):
    conn = psycopg2.connect(roles_db)
    with conn.cursor() as cur:
        cur.execute("SELECT rolname, rolsuper, rolcreatedb, rolcreaterole, rolcanlogin FROM pg_roles "
                    "WHERE rolname IN ('survey_worker', 'survey_web', 'auditor') ORDER BY rolname")
        assert cur.fetchall() == [("auditor", False, False, False, True),
                                  ("survey_web", False, False, False, True),
                                  ("survey_worker", False, False, False, True)]
    conn.close()


def test_reapplying_changes_nothing(roles_db):
    before = _privileges(roles_db)
    apply_schema(roles_db, SCHEMA)
    apply_roles(roles_db, ROLES)
    apply_roles(roles_db, ROLES)
    assert _privileges(roles_db) == before
    assert before  # there is something to compare


def _privileges(url):
    conn = psycopg2.connect(url)
    with conn.cursor() as cur:
        cur.execute("SELECT grantee, privilege_type, table_name, column_name FROM information_schema.column_privileges "
                    "WHERE table_name IN ('cats', 'erasures', 'survey_tables') AND grantee IN ('survey_worker', 'survey_web', 'auditor') "
                    "ORDER BY 1, 2, 3, 4")
        rows = cur.fetchall()
        cur.execute("SELECT grantee, routine_name FROM information_schema.routine_privileges "
                    "WHERE routine_schema = 'public' AND grantee <> current_user ORDER BY 1, 2")
        rows += cur.fetchall()
    conn.close()
    return rows


def test_passwords_come_from_the_environment_or_files(roles_db, tmp_path):
    secret_file = tmp_path / "worker-password"
    secret_file.write_text("s3cret from a file\n")
    env = {"DATABASE_URL": roles_db, "WORKER_DATABASE_URL": roles_db.replace("://survey@", "://survey_worker@"),
           "WORKER_DATABASE_PASSWORD_FILE": str(secret_file), "AUDITOR_DATABASE_PASSWORD": "from env"}
    config = Config.from_env(env)
    assert "s3cret from a file" not in repr(config)
    assert config.role_passwords == {"survey_worker": "s3cret from a file", "auditor": "from env"}
    # The worker's connection string carries it; the owner's does not.
    assert "password='s3cret from a file'" in config.database_url
    assert "password" not in config.migrate_url

    migrate(config)
    conn = psycopg2.connect(roles_db)
    with conn.cursor() as cur:
        cur.execute("SELECT rolname FROM pg_authid WHERE rolpassword IS NOT NULL "
                    "AND rolname IN ('survey_worker', 'survey_web', 'auditor') ORDER BY 1")
        assert [r[0] for r in cur.fetchall()] == ["auditor", "survey_worker"]
        # Reset, so other tests' connections stay password-free (the test cluster trusts anyway).
        cur.execute("ALTER ROLE survey_worker PASSWORD NULL; ALTER ROLE auditor PASSWORD NULL")
    conn.commit()
    conn.close()

    web = web_config.from_env({"SECRET_KEY": "k", "WEB_DATABASE_URL": roles_db.replace("://survey@", "://survey_web@"),
                               "WEB_DATABASE_PASSWORD": "web pw"})
    assert "user=survey_web" in web["DATABASE_URL"] and "password='web pw'" in web["DATABASE_URL"]
    # Connections work with it (trust authentication ignores the password, but libpq parses it).
    psycopg2.connect(web["DATABASE_URL"]).close()


def test_no_secrets_in_the_code():
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    for path in list((root / "db").glob("*.sql")) + list((root / "web").glob("*.py")) + list((root / "worker").glob("*.py")):
        text = path.read_text().lower()
        assert "password '" not in text and "password='" not in text, path


# Every statement logged, and every statement's text kept by pg_stat_statements.
LOUD_SERVER = {"log_statement": "all", "shared_preload_libraries": "pg_stat_statements"}


def test_no_role_password_reaches_a_server_log_or_pg_stat_statements():
    server = PostgresServer(passwords=True, settings=LOUD_SERVER)
    try:
        url = server.create_database("survey")
        passwords = {"survey_worker": "worker-plain-" + uuid.uuid4().hex,
                     "survey_web": "web-plain-" + uuid.uuid4().hex,
                     "auditor": "auditor-plain-" + uuid.uuid4().hex}
        migrate(Config.from_env({"DATABASE_URL": url, "WORKER_DATABASE_PASSWORD": passwords["survey_worker"],
                                 "WEB_DATABASE_PASSWORD": passwords["survey_web"],
                                 "AUDITOR_DATABASE_PASSWORD": passwords["auditor"]}))
        # The owner's, as scripts/run-db sets it; and one that fails, which
        # PostgreSQL logs with its statement whatever log_statement says.
        set_passwords(url, {"survey": server.password})
        failing = "failing-plain-" + uuid.uuid4().hex
        with pytest.raises(psycopg2.errors.UndefinedObject):
            set_passwords(url, {"nobody": failing})

        log, kept = (server.tmp / "log").read_text(), statements_kept(url)
        # The checks below look where the statements are.
        assert "ALTER ROLE" in log and any("ALTER ROLE" in q for q in kept), kept
        assert 'role "nobody" does not exist' in log
        for plain in (*passwords.values(), server.password, failing):
            assert plain not in log
            assert not [q for q in kept if plain in q]
        # Each role signs in with its password, over TCP with scram-sha-256.
        for role, password in {**passwords, "survey": server.password}.items():
            conn = psycopg2.connect(make_dsn(url, user=role, password=password), connect_timeout=5)
            with conn.cursor() as cur:
                cur.execute("SELECT current_user")
                assert cur.fetchone() == (role,)
            conn.close()
        with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
            psycopg2.connect(make_dsn(url, user="auditor", password=passwords["survey_web"]), connect_timeout=5)
    finally:
        server.destroy()
