"""`python -m worker.healthcheck [deliver]`: exit 0 only if this worker (with
`deliver`, this delivery worker) is registered in Redis and has sent a heartbeat recently.  A live process is not enough: a
worker that lost Redis, or hangs, stops heartbeating and is reported unhealthy."""

import sys
from datetime import datetime, timezone

import redis
from rq import SimpleWorker
from rq.serializers import JSONSerializer
from rq.worker_registration import get_keys

import redisbounds

from .config import Config


def check(config, name_file=None):
    try:
        name = (name_file or config.name_file).read_text().strip()
    except OSError:
        return "the worker has not registered yet"
    connection = redisbounds.connect(config.redis_url, reply_timeout=2)
    key = SimpleWorker.redis_worker_namespace_prefix + name
    # A worker that shut down keeps its key for a minute, but leaves the registry at once.
    if key not in get_keys(connection=connection):
        return f"worker {name} is not registered in Redis"
    worker = SimpleWorker.find_by_key(key, connection=connection, serializer=JSONSerializer)
    if worker is None or worker.last_heartbeat is None:
        return f"worker {name} is not registered in Redis"
    age = (datetime.now(timezone.utc) - worker.last_heartbeat.replace(tzinfo=timezone.utc)).total_seconds()
    if age > config.worker_ttl:
        return f"worker {name}: last heartbeat {age:.0f}s ago"
    return None


def main():
    try:
        config = Config.from_env()
        problem = check(config, config.deliver_name_file if sys.argv[1:] == ["deliver"] else None)
    except redis.RedisError as exc:
        problem = f"redis: {exc}"
    if problem:
        print(problem, file=sys.stderr)
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
