"""MAX_RESPONSES's count: exact across every process and replica, and held
in Redis for what is waiting only, never for the survey's history.

Redis keeps two keys per queue:

- `settled`, the answers known to be in PostgreSQL (rows plus tombstones);
- `pending`, a sorted set of the ids accepted and not yet known to be in
  PostgreSQL, scored by when they were accepted (about 100 bytes each).

The answers taken are settled + |pending|.  The web's post checks and adds
to `pending` in the script that also queues its job (web/submissions.py's
TAKE), so every process together takes exactly the cap;
the worker, after each commit, moves the ids it stored from `pending` to
`settled` in one script that counts an id only if it took it out (`settle`),
so an id is counted once however often it is settled.  So Redis holds one
entry per answer not yet stored, and nothing per stored one.

Lost: if `settled` is missing (a Redis that lost its data, a new REDIS_URL,
a failover to an empty replica), posts with a cap are not accepted until the
web has rebuilt both keys from PostgreSQL's count and from the store jobs
still in the queue (`rebuild`), in one script that only the first rebuild's
call applies.  Without a cap, a post keeps nothing here at all.

Both images copy this package (web/Dockerfile, worker/Dockerfile)."""

import time
import uuid

from psycopg2 import sql
from rq import Queue
from rq.registry import FailedJobRegistry

# Which of the given ids PostgreSQL holds, as a row of the survey's table
# or a tombstone (an id is never both).
HELD = """
    SELECT coalesce(array_agg(id::text), '{{}}')
    FROM unnest(%s::uuid[]) AS id
    WHERE EXISTS (SELECT FROM public.{table} WHERE submission_id = id)
       OR EXISTS (SELECT FROM erasures WHERE submission_id = id)
"""
# The answers of the survey PostgreSQL holds (its rows, and the tombstones of
# those erased from its table: db/schema.sql), and which of the given ids, in
# one statement: one snapshot for both.  For a rebuild only: it counts every
# row.  Tombstones from before they named their table are the cat survey's.
KNOWN = """
    SELECT (SELECT count(*) FROM public.{table})
           + (SELECT count(*) FROM erasures WHERE survey_table = {name} OR (survey_table IS NULL AND {name} = 'cats')),
           (SELECT coalesce(array_agg(id::text), '{{}}')
            FROM unnest(%s::uuid[]) AS id
            WHERE EXISTS (SELECT FROM public.{table} WHERE submission_id = id)
               OR EXISTS (SELECT FROM erasures WHERE submission_id = id))
"""


def held_query(table):
    return sql.SQL(HELD).format(table=sql.Identifier(table))


def known_query(table):
    return sql.SQL(KNOWN).format(table=sql.Identifier(table), name=sql.Literal(table))


# KEYS: settled, pending.  ARGV: ids PostgreSQL holds now.  Each counts
# once: only the call that takes it out of pending adds it.  Without a
# count (lost) there is nothing to add to: the rebuild counts them.
SETTLE = """
local moved = 0
for i = 1, #ARGV do moved = moved + redis.call('ZREM', KEYS[2], ARGV[i]) end
if moved > 0 and redis.call('EXISTS', KEYS[1]) == 1 then redis.call('INCRBY', KEYS[1], moved) end
return moved
"""

# KEYS: settled, pending.
# ARGV: PostgreSQL's count, now, then the ids waiting that it does not hold.
REBUILD = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
for i = 3, #ARGV do redis.call('ZADD', KEYS[2], 'NX', ARGV[2], ARGV[i]) end
return 1
"""

# KEYS: pending.  ARGV: the job key prefix, then ids.  An id whose store job
# is gone and that PostgreSQL does not hold will never be stored (its failed
# job expired or was deleted; or, from before a post took its place and
# queued its job in one step, an enqueue that failed): its count is given back.
DROP_UNQUEUED = """
local dropped = 0
for i = 2, #ARGV do
    if redis.call('EXISTS', ARGV[1] .. ARGV[i]) == 0 then dropped = dropped + redis.call('ZREM', KEYS[1], ARGV[i]) end
end
return dropped
"""

# Past this an id with no job behind it is taken as one that will never be
# stored (a margin: a post takes its place and queues its job in one step).
UNQUEUED_AFTER_S = 600
# How many ids one reconcile looks at, oldest first: the worker's settle
# after each commit does the rest.
RECONCILE_BATCH = 5000
# Lua's unpack takes a few thousand arguments at most.
CHUNK = 1000

# What the web's accept set held before: one entry for every answer ever
# taken.  The web deletes it at start (web/__init__.py).
LEGACY_KEY = "survey:accepted:{}"
JOB_PREFIX = "rq:job:"
LEGACY_TABLE = "cats"
# How the web describes a store job (web/submissions.py), which tells it from the other jobs.
STORE_DESCRIPTION = b"store submission "


def _chunks(items):
    items = list(items)
    return [items[i:i + CHUNK] for i in range(0, len(items), CHUNK)] or [[]]


class Cap:
    """One survey's count: each survey (by its table) has its own, and the
    cat survey keeps the keys it had before there were several."""

    def __init__(self, connection, queue_name, table=LEGACY_TABLE):
        self.redis = connection
        self.queue_name = queue_name
        self.table = table
        prefix = f"survey:cap:{queue_name}" + ("" if table == LEGACY_TABLE else f":{table}")
        self.settled_key = f"{prefix}:settled"
        self.pending_key = f"{prefix}:pending"
        self.legacy_key = LEGACY_KEY.format(queue_name)
        self._settle = connection.register_script(SETTLE)
        self._rebuild = connection.register_script(REBUILD)
        self._drop_unqueued = connection.register_script(DROP_UNQUEUED)

    def of(self, table):
        """The count of the survey stored in `table`, on the same queue."""
        return self if table == self.table else Cap(self.redis, self.queue_name, table)

    @staticmethod
    def tables(connection, queue_name):
        """The tables of the surveys with answers waiting in a count (a few
        keys: one per survey with a cap)."""
        tables = set()
        for key in connection.scan_iter(match=f"survey:cap:{queue_name}*:pending", count=1000):
            middle = key.decode()[len(f"survey:cap:{queue_name}"):-len(":pending")]
            tables.add(middle[1:] if middle else LEGACY_TABLE)
        return sorted(tables)

    def taken(self):
        """Answers taken (stored, erased or waiting); None when the count is lost."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.get(self.settled_key)
        pipe.zcard(self.pending_key)
        settled, pending = pipe.execute()
        return None if settled is None else int(settled) + pending

    def settle(self, stored_ids):
        """After a commit: PostgreSQL holds `stored_ids` (rows, or tombstones the trigger kept them out for)."""
        for chunk in _chunks(stored_ids):
            if chunk:
                self._settle(keys=[self.settled_key, self.pending_key], args=chunk)

    def waiting_store_ids(self):
        """The ids of store jobs anywhere in the queue: queued, taken, held, scheduled, failed."""
        queue = Queue(self.queue_name, connection=self.redis)
        pipe = self.redis.pipeline(transaction=False)
        pipe.lrange(queue.key, 0, -1)
        pipe.lrange(queue.intermediate_queue_key, 0, -1)
        for key in (queue.started_job_registry.key, queue.scheduled_job_registry.key,
                    FailedJobRegistry(queue=queue).key):
            pipe.zrange(key, 0, -1)
        # A started registry's members are "job id:execution id".
        ids = sorted({m.decode().split(":", 1)[0] for members in pipe.execute() for m in members} - {""})
        ids = [i for i in ids if _is_submission_id(i)]
        # Only store jobs: a retention job's id is a UUID too.
        pipe = self.redis.pipeline(transaction=False)
        for i in ids:
            pipe.hget(JOB_PREFIX + i, "description")
        return [i for i, about in zip(ids, pipe.execute()) if about and about.startswith(STORE_DESCRIPTION)]

    def rebuild(self, known):
        """Make the count again from PostgreSQL (`known(ids)` -> (count, ids
        it holds), one snapshot, KNOWN) and the store jobs waiting; True if
        this call's rebuild was the one applied.  The queue is read before
        PostgreSQL: a job stored in between is then in PostgreSQL's count and
        left out of pending, never counted twice or missed."""
        waiting = set(self.waiting_store_ids())
        waiting.update(m.decode() for m in self.redis.zrange(self.pending_key, 0, -1))
        count, stored = known(sorted(waiting))
        unstored = sorted(waiting - set(stored))
        return bool(self._rebuild(keys=[self.settled_key, self.pending_key],
                                  args=[count, time.time(), *unstored]))

    def reconcile(self, held, now=None):
        """What the worker's maintenance runs: settle the pending ids that
        PostgreSQL holds (`held(ids)`, HELD: a settle lost with a crash, a
        rebuild's race, an erase), and give back those whose job is gone.
        Returns (settled, dropped)."""
        now = time.time() if now is None else now
        if not self.redis.exists(self.settled_key, self.pending_key):
            return 0, 0
        # Ids accepted in the last minute are the settle's to handle.
        ids = [m.decode() for m in self.redis.zrangebyscore(self.pending_key, "-inf", now - 60,
                                                             start=0, num=RECONCILE_BATCH)]
        stored = held(ids) if ids else []
        self.settle(stored)
        old = [m.decode() for m in self.redis.zrangebyscore(self.pending_key, "-inf", now - UNQUEUED_AFTER_S,
                                                             start=0, num=RECONCILE_BATCH)]
        candidates = sorted(set(old) - set(stored))
        dropped = sum(int(self._drop_unqueued(keys=[self.pending_key], args=[JOB_PREFIX, *chunk]))
                      for chunk in _chunks(candidates) if chunk)
        return len(stored), dropped


def _is_submission_id(value):
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False
