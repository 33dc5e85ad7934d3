"""The queue side of a submission: enqueue it once, and ask how it is doing."""

import logging
import time

import redis
from rq import Queue, Retry
from rq.exceptions import DuplicateJobError, NoSuchJobError
from rq.job import Job, JobStatus
from rq.scripts import _build_hset_args
from rq.serializers import JSONSerializer

import redisbounds
import submission as payload
from submission import ERASE_JOB, STORE_JOB, erase_job_id
from submission.cap import LEGACY_TABLE, Cap, known_query


log = logging.getLogger(__name__)

# The form and the tallies show whether the cap is reached; they wait this
# long at most for the count, and after a failed read skip Redis for a while,
# so with Redis frozen a page waits once per interval per process, not always.
GLANCE_TIMEOUT_S = 0.25
GLANCE_BACKOFF_S = 5

# A post's whole visit to Redis, in one atomic step (one round trip, one
# fsync): the erased check, the double click, QUEUE_MAX_DEPTH, the cap
# (submission/cap.py's count of what is pending) and RQ's own unique enqueue (rq/scripts.py's
# script, and the queue's entry in rq:queues that enqueue_job adds), with
# the job hash RQ's Job.to_dict makes.  Nothing is written unless all pass.
# KEYS: the job, the queue, its intermediate list, the started and the
# scheduled registries, rq:queues, the cap's settled and pending, the erased
# mark, the erase job.  ARGV: the id, the depth limit (-1: none), the cap
# (-1: none), now, the job's TTL (-1: none), the queue key, whether an
# erased id is refused (1/0), then the job's fields and values.
TAKE = """
if ARGV[7] == '1' and (redis.call('EXISTS', KEYS[9]) == 1 or redis.call('EXISTS', KEYS[10]) == 1) then return 3 end
if redis.call('EXISTS', KEYS[1]) == 1 then return 2 end
local limit = tonumber(ARGV[2])
if limit >= 0 and redis.call('LLEN', KEYS[2]) + redis.call('LLEN', KEYS[3])
                   + redis.call('ZCARD', KEYS[4]) + redis.call('ZCARD', KEYS[5]) >= limit then return -2 end
local cap = tonumber(ARGV[3])
if cap >= 0 and not redis.call('ZSCORE', KEYS[8], ARGV[1]) then
    local settled = redis.call('GET', KEYS[7])
    if not settled then return -1 end
    if tonumber(settled) + redis.call('ZCARD', KEYS[8]) >= cap then return 0 end
    redis.call('ZADD', KEYS[8], ARGV[4], ARGV[1])
end
redis.call('SADD', KEYS[6], ARGV[6])
redis.call('HSET', KEYS[1], unpack(ARGV, 8))
if tonumber(ARGV[5]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[5]) end
redis.call('RPUSH', KEYS[2], ARGV[1])
return 1
"""
TAKEN = {3: "erased", 2: "duplicate", 1: "queued", 0: "full", -1: "lost", -2: "queue_full"}


class SubmissionQueue:
    def __init__(self, config):
        # Short timeouts: while Redis is down a visitor should get our 503
        # page in about a second, not wait on a hanging socket.
        self.redis = redisbounds.connect(config["REDIS_URL"], reply_timeout=2, connect_timeout=1)
        self.queue = Queue(config["QUEUE_NAME"], connection=self.redis, serializer=JSONSerializer)
        self.retry = Retry(max=len(config["JOB_RETRY_INTERVALS"]), interval=config["JOB_RETRY_INTERVALS"])
        self.job_options = {
            "timeout": config["JOB_TIMEOUT"],
            "failure_ttl": config["JOB_FAILURE_TTL"],
            "result_ttl": config["JOB_RESULT_TTL"],
        }
        # Where a submission waits until it is stored: RQ's queue, the list a
        # worker moves a job to as it takes it, the jobs a worker holds, and
        # those waiting for a retry (during a database outage, most of them).
        # QUEUE_MAX_DEPTH counts them all (TAKE's KEYS[2] to KEYS[5], lists then sets).
        self.waiting = (self.queue.key, self.queue.intermediate_queue_key,
                        self.queue.started_job_registry.key, self.queue.scheduled_job_registry.key)
        # Each survey's MAX_RESPONSES count (submission/cap.py), by its
        # table: one entry per answer not yet stored, only while a cap is set.
        self._glance_redis = redisbounds.connect(config["REDIS_URL"], GLANCE_TIMEOUT_S, GLANCE_TIMEOUT_S)
        self._counts = {}
        self._glance_failed_at = None
        self._take = self.redis.register_script(TAKE)

    def count(self, table, glance=False):
        """The Cap of the survey stored in `table` (made once per process)."""
        key = (table, glance)
        if key not in self._counts:
            self._counts[key] = Cap(self._glance_redis if glance else self.redis, self.queue.name, table)
        return self._counts[key]

    def accepted(self, table=LEGACY_TABLE):
        """Answers taken (stored, erased or waiting), None while the count is lost."""
        return self.count(table).taken()

    def taken_lately(self, table=LEGACY_TABLE):
        """accepted(), for a page to show: None at once while Redis has just failed to answer."""
        if self._glance_failed_at is not None and time.monotonic() - self._glance_failed_at < GLANCE_BACKOFF_S:
            return None
        try:
            taken = self.count(table, glance=True).taken()
        except redis.RedisError as exc:
            log.warning("survey: cannot count the answers taken: %s", exc)
            self._glance_failed_at = time.monotonic()
            return None
        self._glance_failed_at = None
        return taken

    def rebuild(self, store, table=LEGACY_TABLE):
        """The survey's count again, from PostgreSQL (through `store`, web/store.py) and the queue."""
        return self.count(table).rebuild(lambda ids: store.fetch_one(known_query(table), (ids,)))

    def take(self, submission, table=LEGACY_TABLE, cap=None, max_depth=None, refuse_erased=True):
        """Queue the store job if the submission may be taken, in one atomic
        step (TAKE): 'queued'; 'duplicate' (already queued: a double click);
        'erased' (its answer was erased: never taken again); 'queue_full'
        (`max_depth` wait); 'full' (the survey has its `cap` answers); 'lost'
        (the cap's count must be rebuilt first: rebuild()).

        The submission id is the job id, so a double click cannot queue two jobs."""
        sid = submission["id"]
        job = self.queue.create_job(STORE_JOB, kwargs={"submission": submission}, job_id=sid, retry=self.retry,
                                    **self.job_options, description=f"store submission {sid}")
        self.queue._prepare_for_queue(job)  # what enqueue_job sets: origin, enqueued_at, status
        count = self.count(table)
        result = self._take(
            keys=[job.key, *self.waiting, self.queue.redis_queues_keys, count.settled_key, count.pending_key,
                  payload.erased_key(sid), Job.key_for(erase_job_id(sid))],
            args=[sid, -1 if max_depth is None else max_depth, -1 if cap is None else cap, time.time(),
                  -1 if job.ttl is None else job.ttl, self.queue.key, int(refuse_erased), *_build_hset_args(job)])
        return TAKEN[int(result)]

    def enqueue(self, submission):
        """Queue the store job, whatever the depth, cap or erasures; False
        when this submission was already queued (a re-delivery, as RQ's would be)."""
        return self.take(submission, refuse_erased=False) == "queued"

    def enqueue_erase(self, submission_id):
        """Queue the erase job; False when it was already queued (a double click).

        Through the queue like a store, with the same back-off: the worker's
        erase is ordered against the store in the database (db/schema.sql),
        so the two jobs may run in either order."""
        job_id = erase_job_id(submission_id)
        if self.state(job_id) == "failed":
            # Asked again after it failed for good: a fresh job, with fresh retries.
            # (An outage never gets it here: worker/failures.py keeps it retrying.)
            self._delete(job_id)
        return self._enqueue_once(ERASE_JOB, {"submission_id": submission_id}, job_id,
                                  f"erase submission {submission_id}")

    def _delete(self, job_id):
        try:
            Job.fetch(job_id, connection=self.redis, serializer=JSONSerializer).delete()
        except NoSuchJobError:
            pass  # another request got there first

    def _enqueue_once(self, function, kwargs, job_id, description):
        job = self.queue.create_job(function, kwargs=kwargs, job_id=job_id, retry=self.retry,
                                    **self.job_options, description=description)
        try:
            self.queue.enqueue_job(job, unique=True)
        except DuplicateJobError:
            return False
        return True

    def state(self, job_id):
        """'queued', 'failed', 'stored' (finished) or None when the queue has no such job."""
        return _word(self.redis.hget(Job.key_for(job_id), "status"))

    def states(self, submission_id):
        """(the store job's state, the erase job's), as state() words them, in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hget(Job.key_for(submission_id), "status")
        pipe.hget(Job.key_for(erase_job_id(submission_id)), "status")
        return tuple(_word(status) for status in pipe.execute())

    def ping(self):
        return self.redis.ping()


def _word(status):
    """A job's status field (RQ's JobStatus) as state() words it; None: no job."""
    if status is None:
        return None
    status = status.decode()
    if status == JobStatus.FINISHED:
        return "stored"
    if status in (JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED):
        return "failed"
    return "queued"
