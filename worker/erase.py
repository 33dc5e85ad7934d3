"""`python -m worker.erase ID [ID ...]`: the auditor's erase, by submission id.

Runs the worker's own erase job at once, with the worker's database role
(WORKER_DATABASE_URL): the auditor's role still cannot delete, and the erase
is the same one the receipt's button queues, tombstone included, so a store
of that id still queued or re-delivered later stores nothing.  Run it where
the worker runs (docker compose exec worker ..., kubectl exec deploy/survey-worker ...)."""

import argparse
import sys
import uuid

import psycopg2

from . import db, jobs
from .config import Config


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m worker.erase", description=__doc__.split("\n\n")[0])
    parser.add_argument("ids", nargs="+", metavar="ID", type=uuid.UUID, help="a submission id (the receipt's)")
    args = parser.parse_args(argv)
    config = Config.from_env()
    db.configure(config.database_url, config.db_timeout)
    try:
        for sid in args.ids:
            erased = jobs.erase_submission(str(sid))["erased"]
            print(f"{sid} erased" if erased else f"{sid}: no stored answer; tombstone kept, it will never be stored")
    except psycopg2.Error as exc:
        print(f"could not erase: {exc}", file=sys.stderr)
        return 1
    finally:
        db.discard()
    return 0


if __name__ == "__main__":
    sys.exit(main())
