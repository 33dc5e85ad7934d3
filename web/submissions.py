"""The queue side of a submission: enqueue it once, and ask how it is doing."""

from redis import Redis
from rq import Queue, Retry
from rq.exceptions import DuplicateJobError, NoSuchJobError
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

# Named by string so the web never imports the worker's code (or its image).
STORE_JOB = "worker.jobs.store_submission"
ERASE_JOB = "worker.jobs.erase_submission"


def erase_job_id(submission_id):
    # Not the submission id, which the store job holds: both may be in the queue at once.
    return f"erase-{submission_id}"

# Counts a submission as accepted, once, unless MAX_RESPONSES are already in:
# the check and the count are one atomic step in Redis, so every process and
# replica together take exactly the cap.  1: newly counted, 2: counted before
# (a double click, which the cap never refuses), 0: the cap is reached.
ACCEPT_SCRIPT = """
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return 2 end
local cap = tonumber(ARGV[2])
if cap >= 0 and redis.call('SCARD', KEYS[1]) >= cap then return 0 end
redis.call('SADD', KEYS[1], ARGV[1])
return 1
"""


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
        # Every submission id accepted, for MAX_RESPONSES (about 100 bytes each).
        self.accepted_key = f"survey:accepted:{config['QUEUE_NAME']}"
        self._accept = self.redis.register_script(ACCEPT_SCRIPT)

    def accept(self, submission_id, cap):
        """Count the submission as accepted: 'new', 'again' (already counted)
        or None when `cap` answers are in (cap None: no limit)."""
        result = self._accept(keys=[self.accepted_key], args=[submission_id, -1 if cap is None else cap])
        return {1: "new", 2: "again"}.get(int(result))

    def unaccept(self, submission_id):
        """Give back a count whose enqueue failed: the visitor was told nothing was stored."""
        self.redis.srem(self.accepted_key, submission_id)

    def accepted(self):
        return self.redis.scard(self.accepted_key)

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
