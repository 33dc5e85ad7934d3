"""Apply db/schema.sql, then db/roles.sql: on a fresh database they create
the table and the least-privilege roles, on an existing one they change
nothing.  Run on every worker start (unless MIGRATE_ON_START=0) and by
`python -m worker.migrate`, as the table's owner (DATABASE_URL)."""

import logging
import sys

import psycopg2
from psycopg2 import sql
from psycopg2.extensions import encrypt_password

from .config import Config

log = logging.getLogger(__name__)

# Several workers may start at once; CREATE ... IF NOT EXISTS is not safe
# against a concurrent twin, so they take turns.
SCHEMA_LOCK = "SELECT pg_advisory_xact_lock(hashtext('survey schema'))"
SET_PASSWORD = "ALTER ROLE {} PASSWORD %s"


def _apply(database_url, work):
    """work(cursor), in one transaction, holding the schema lock."""
    conn = psycopg2.connect(database_url, connect_timeout=5, application_name="survey-migrate")
    try:
        with conn, conn.cursor() as cur:
            cur.execute(SCHEMA_LOCK)
            work(cur)
    finally:
        conn.close()


def apply_schema(database_url, schema_path):
    _apply(database_url, lambda cur: cur.execute(schema_path.read_text()))
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
        _set_passwords(cur, passwords or {})
    _apply(database_url, work)
    log.info("roles %s applied%s", roles_path,
             f"; passwords set for {', '.join(sorted(passwords))}" if passwords else "")


def set_passwords(database_url, passwords):
    """Only the passwords ({role: password}): scripts/run-db sets the owner's."""
    _apply(database_url, lambda cur: _set_passwords(cur, passwords))


def migrate(config):
    apply_schema(config.migrate_url, config.schema_path)
    apply_roles(config.migrate_url, config.roles_path, config.role_passwords)


def main():
    logging.basicConfig(level="INFO", format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        migrate(Config.from_env())
    except psycopg2.Error as exc:
        log.error("could not apply the schema: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
