"""Apply db/schema.sql: on a fresh database it creates the table, on an
existing one it changes nothing.  Run on every worker start and by `python -m
worker.migrate`."""

import logging
import sys

import psycopg2

from .config import Config

log = logging.getLogger(__name__)

# Several workers may start at once; CREATE ... IF NOT EXISTS is not safe
# against a concurrent twin, so they take turns.
SCHEMA_LOCK = "SELECT pg_advisory_xact_lock(hashtext('survey schema'))"


def apply_schema(database_url, schema_path):
    sql = schema_path.read_text()
    conn = psycopg2.connect(database_url, connect_timeout=5, application_name="survey-migrate")
    try:
        with conn, conn.cursor() as cur:
            cur.execute(SCHEMA_LOCK)
            cur.execute(sql)
    finally:
        conn.close()
    log.info("schema %s applied", schema_path)


def main():
    logging.basicConfig(level="INFO", format="%(asctime)s %(name)s %(levelname)s %(message)s")
    config = Config.from_env()
    try:
        apply_schema(config.database_url, config.schema_path)
    except psycopg2.Error as exc:
        log.error("could not apply the schema: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
