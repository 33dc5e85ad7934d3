"""The queue side of a submission: enqueue it once, and ask how it is doing."""

import logging
import time

import redis
from rq import Queue, Retry
from rq.exceptions import DuplicateJobError, NoSuchJobError
from rq.job import Job, JobStatus
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
        self.waiting_lists = (self.queue.key, self.queue.intermediate_queue_key)
        self.waiting_sets = (self.queue.started_job_registry.key, self.queue.scheduled_job_registry.key)
        # Each survey's MAX_RESPONSES count (submission/cap.py), by its
        # table: one entry per answer not yet stored, only while a cap is set.
        self._glance_redis = redisbounds.connect(config["REDIS_URL"], GLANCE_TIMEOUT_S, GLANCE_TIMEOUT_S)
        self._counts = {}
        self._glance_failed_at = None

    def count(self, table, glance=False):
        """The Cap of the survey stored in `table` (made once per process)."""
        key = (table, glance)
        if key not in self._counts:
            self._counts[key] = Cap(self._glance_redis if glance else self.redis, self.queue.name, table)
        return self._counts[key]

    def accept(self, submission_id, cap, table=LEGACY_TABLE):
        """Count the submission as accepted by its survey, in one atomic step
        with the cap's check: 'new', 'again' (counted before), 'erased' (its
        answer was erased: it is never taken again), 'full' (`cap` answers
        are in; None: no limit) or 'lost' (the count must be rebuilt first:
        rebuild())."""
        return self.count(table).accept(submission_id, cap, payload.erased_key(submission_id),
                                        Job.key_for(erase_job_id(submission_id)))

    def unaccept(self, submission_id, table=LEGACY_TABLE):
        """Give back a count whose enqueue failed, unless it ran after all."""
        self.count(table).give_back(submission_id)

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

    def enqueue(self, submission):
        """Queue the store job; return False when this submission was already queued.

        The submission id is the job id, and RQ's unique-enqueue script checks
        and saves it in one atomic step, so a double click cannot queue two jobs.
        """
        return self._enqueue_once(STORE_JOB, {"submission": submission}, submission["id"],
                                  f"store submission {submission['id']}")

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

    def erase_state(self, submission_id):
        """The erase job's state, as state() words it; None when there is none."""
        return self.state(erase_job_id(submission_id))

    def state(self, job_id):
        """'queued', 'failed', 'stored' (finished) or None when the queue has no such job."""
        try:
            status = Job.fetch(job_id, connection=self.redis, serializer=JSONSerializer).get_status()
        except NoSuchJobError:
            return None
        if status == JobStatus.FINISHED:
            return "stored"
        if status in (JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED):
            return "failed"
        return "queued"

    def depth(self):
        """Submissions not yet stored: queued, held by a worker, or scheduled
        for a retry; one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for key in self.waiting_lists:
            pipe.llen(key)
        for key in self.waiting_sets:
            pipe.zcard(key)
        return sum(pipe.execute())

    def ping(self):
        return self.redis.ping()
