"""Apply db/schema.sql, then db/roles.sql, then each survey's table and view
(worker/tables.py): on a fresh database they create the tables and the
least-privilege roles, on an existing one they change nothing but what an
edited survey file adds.  Run on every worker start (unless MIGRATE_ON_START=0) and by
`python -m worker.migrate`, as the table's owner (DATABASE_URL).

A start whose files are those last applied (their digest is recorded in
schema_applied) applies nothing: re-creating the triggers takes a lock on
each survey's table that waits for every store in flight and holds off every later one, at
every start of every worker.  The passwords are set every time, as the
environment may have new ones.  Every wait is bounded (pgbounds/): a lock
held elsewhere fails the attempt after LOCK_TIMEOUT_S, and the worker tries
again, rather than queueing the stores behind it."""

import hashlib
import logging
import sys

import psycopg2
from psycopg2 import sql
from psycopg2.extensions import encrypt_password

import pgbounds
import survey

from . import tables
from .config import Config

log = logging.getLogger(__name__)

# Several workers may start at once; CREATE ... IF NOT EXISTS is not safe
# against a concurrent twin, so they take turns.
SCHEMA_LOCK = "SELECT pg_advisory_xact_lock(hashtext('survey schema'))"
SET_PASSWORD = "ALTER ROLE {} PASSWORD %s"
APPLIED = "SELECT digest FROM schema_applied"
HAS_APPLIED = "SELECT to_regclass('public.schema_applied') IS NOT NULL"
RECORD_APPLIED = """
    INSERT INTO schema_applied (digest) VALUES (%s)
    ON CONFLICT (one) DO UPDATE SET digest = EXCLUDED.digest, applied_at = now()
"""
LOCK_TIMEOUT_S = 10
# Long enough for a first count of millions of rows, or a new index on them.
STATEMENT_TIMEOUT_S = 120


def _apply(database_url, work):
    """work(cursor), in one transaction, holding the schema lock."""
    conn = psycopg2.connect(database_url, application_name="survey-migrate",
                            **pgbounds.connect_options(LOCK_TIMEOUT_S, STATEMENT_TIMEOUT_S))
    try:
        with conn, conn.cursor() as cur:
            cur.execute(SCHEMA_LOCK)
            work(cur)
    finally:
        conn.close()


def apply_schema(database_url, schema_path, surveys=None):
    """The schema and the surveys' tables (by default the cat survey's), without the roles."""
    def work(cur):
        cur.execute(schema_path.read_text())
        tables.apply(cur, [survey.load()] if surveys is None else surveys)
    _apply(database_url, work)
    log.info("schema %s applied", schema_path)


def _set_passwords(cur, passwords):
    for role, password in passwords.items():
        # libpq computes the SCRAM verifier here: the plaintext never reaches
        # the server, so no server log (log_statement, an error's STATEMENT
        # line) and no pg_stat_statements entry can hold it.
        verifier = encrypt_password(password, role, cur, "scram-sha-256")
        cur.execute(sql.SQL(SET_PASSWORD).format(sql.Identifier(role)), (verifier,))


def apply_roles(database_url, roles_path, passwords=None):
    """Create the roles and grant their privileges; set the passwords given
    (from the environment: never in the SQL, never in a log)."""
    def work(cur):
        cur.execute(roles_path.read_text())
        tables.grant(cur)
        _set_passwords(cur, passwords or {})
    _apply(database_url, work)
    log.info("roles %s applied%s", roles_path,
             f"; passwords set for {', '.join(sorted(passwords))}" if passwords else "")


def set_passwords(database_url, passwords):
    """Only the passwords ({role: password}): scripts/run-db sets the owner's."""
    _apply(database_url, lambda cur: _set_passwords(cur, passwords))


def _applied(cur):
    cur.execute(HAS_APPLIED)
    if not cur.fetchone()[0]:
        return None
    cur.execute(APPLIED)
    row = cur.fetchone()
    return row and row[0]


def migrate(config, surveys=None):
    """Apply the files and the surveys' tables unless they are the ones last
    applied; set the passwords.  Raises tables.SurveyEditError for an edit
    that would make stored answers unreadable."""
    surveys = config.surveys() if surveys is None else surveys
    schema, roles = config.schema_path.read_text(), config.roles_path.read_text()
    digest = hashlib.sha256(f"{schema}\0{roles}\0{tables.spec(surveys)}".encode()).hexdigest()
    done = []

    def work(cur):
        # Under the schema lock: a twin that applied them first is seen here.
        if _applied(cur) != digest:
            cur.execute(schema)
            tables.apply(cur, surveys)
            cur.execute(roles)
            tables.grant(cur)
            cur.execute(RECORD_APPLIED, (digest,))
            done.append(True)
        _set_passwords(cur, config.role_passwords)
    _apply(config.migrate_url, work)
    log.info("schema %s and roles %s %s%s", config.schema_path, config.roles_path,
             "applied" if done else f"already applied ({digest[:12]})",
             f"; passwords set for {', '.join(sorted(config.role_passwords))}" if config.role_passwords else "")


def main():
    logging.basicConfig(level="INFO", format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        migrate(Config.from_env())
    except psycopg2.Error as exc:
        log.error("could not apply the schema: %s", exc)
        return 1
    except tables.SurveyEditError as exc:
        log.error("survey: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
