"""`python -m worker.erase ID [ID ...]`: the auditor's erase, by submission id.

Runs the erase job (worker/erasure.py) at once, with the worker's database
role (WORKER_DATABASE_URL): the auditor's role still cannot delete, and the
erase is the same one the receipt's button queues, tombstone included, so a
store of that id still queued or re-delivered later stores nothing, and its
store job, answers included, is deleted from Redis (REDIS_URL).  Run it
where the worker runs (docker compose exec worker ..., kubectl exec
deploy/survey-worker ...)."""

import argparse
import sys
import uuid

import psycopg2
import redis

import redisbounds

from . import erasure
from .config import Config


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m worker.erase", description=__doc__.split("\n\n")[0])
    parser.add_argument("ids", nargs="+", metavar="ID", type=uuid.UUID, help="a submission id (the receipt's)")
    args = parser.parse_args(argv)
    config = Config.from_env()
    connection = redisbounds.connect(config.redis_url)
    try:
        for sid, erased in erasure.erase_now(args.ids, config, connection):
            print(f"{sid} erased" if erased else f"{sid}: no stored answer; tombstone kept, it will never be stored")
    except (psycopg2.Error, redis.RedisError) as exc:
        # Run it again: the erase is idempotent, and a tombstone already written stays.
        print(f"could not erase: {exc}", file=sys.stderr)
        return 1
    finally:
        connection.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
