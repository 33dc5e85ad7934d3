"""The queue side of a submission: enqueue it once, and ask how it is doing."""

import logging
import time

import redis
from redis import Redis
from rq import Queue, Retry
from rq.exceptions import DuplicateJobError, NoSuchJobError
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

import submission as payload
from submission.cap import KNOWN, Cap

# Named by string so the web never imports the worker's code (or its image).
STORE_JOB = "worker.jobs.store_submission"
ERASE_JOB = "worker.jobs.erase_submission"


log = logging.getLogger(__name__)

# The form and the tallies show whether the cap is reached; they wait this
# long at most for the count, and after a failed read skip Redis for a while,
# so with Redis frozen a page waits once per interval per process, not always.
GLANCE_TIMEOUT_S = 0.25
GLANCE_BACKOFF_S = 5


def erase_job_id(submission_id):
    # Not the submission id, which the store job holds: both may be in the queue at once.
    return f"erase-{submission_id}"


class SubmissionQueue:
    def __init__(self, config):
        # Short timeouts: while Redis is down a visitor should get our 503
        # page in about a second, not wait on a hanging socket.
        self.redis = Redis.from_url(config["REDIS_URL"], socket_connect_timeout=1, socket_timeout=2)
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
        # MAX_RESPONSES's count (submission/cap.py): one entry per answer
        # not yet stored, only while a cap is set.
        self.cap = Cap(self.redis, config["QUEUE_NAME"])
        self._glance = Cap(Redis.from_url(config["REDIS_URL"], socket_connect_timeout=GLANCE_TIMEOUT_S,
                                          socket_timeout=GLANCE_TIMEOUT_S), config["QUEUE_NAME"])
        self._glance_failed_at = None

    def accept(self, submission_id, cap):
        """Count the submission as accepted, in one atomic step with the cap's
        check: 'new', 'again' (counted before), 'erased' (its answer was
        erased: it is never taken again), 'full' (`cap` answers are in; None:
        no limit) or 'lost' (the count must be rebuilt first: rebuild())."""
        return self.cap.accept(submission_id, cap, payload.erased_key(submission_id),
                               Job.key_for(erase_job_id(submission_id)))

    def unaccept(self, submission_id):
        """Give back a count whose enqueue failed, unless it ran after all."""
        self.cap.give_back(submission_id)

    def accepted(self):
        """Answers taken (stored, erased or waiting), None while the count is lost."""
        return self.cap.taken()

    def taken_lately(self):
        """accepted(), for a page to show: None at once while Redis has just failed to answer."""
        if self._glance_failed_at is not None and time.monotonic() - self._glance_failed_at < GLANCE_BACKOFF_S:
            return None
        try:
            taken = self._glance.taken()
        except redis.RedisError as exc:
            log.warning("survey: cannot count the answers taken: %s", exc)
            self._glance_failed_at = time.monotonic()
            return None
        self._glance_failed_at = None
        return taken

    def rebuild(self, store):
        """The count again, from PostgreSQL (through `store`, web/store.py) and the queue."""
        return self.cap.rebuild(lambda ids: store.fetch_one(KNOWN, (ids,)))

    def enqueue(self, submission):
        """Queue the store job; return False when this submission was already queued.

        The submission id is the job id, and RQ's unique-enqueue script checks
        and saves it in one atomic step, so a double click cannot queue two jobs.
        """
        return self._enqueue_once(STORE_JOB, {"submission": submission}, submission["id"],
                                  f"store submission {submission['id']}")

    def enqueue_erase(self, submission_id):
        """Queue the erase job; False when it was already queued (a double click).

        Through the queue like a store, with the same retries: the worker's
        erase is ordered against the store in the database (db/schema.sql),
        so the two jobs may run in either order."""
        return self._enqueue_once(ERASE_JOB, {"submission_id": submission_id}, erase_job_id(submission_id),
                                  f"erase submission {submission_id}")

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
