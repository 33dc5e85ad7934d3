"""The queue side of a submission: enqueue it once, and ask how it is doing."""

from redis import Redis
from rq import Queue, Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.scripts import UNIQUE_ENQUEUE_SCRIPT, _build_hset_args
from rq.serializers import JSONSerializer

# Named by string so the web never imports the worker's code (or its image).
STORE_JOB = "worker.jobs.store_submission"


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

    def enqueue(self, submission):
        """Queue the store job; return False when this submission was already queued.

        The submission id is the job id, and RQ's unique-enqueue script checks
        and saves it in one atomic step, so a double click cannot queue two jobs.
        """
        job = self.queue.create_job(
            STORE_JOB,
            kwargs={"submission": submission},
            job_id=submission["id"],
            retry=self.retry,
            **self.job_options,
            description=f"store submission {submission['id']}",
        )
        return self._enqueue_unique(job)

    def _enqueue_unique(self, job):
        """What Queue.enqueue_job(job, unique=True) does, in one round trip
        instead of two: RQ sends its SADD of the queue to the `rq:queues` set
        (which `rq info` reads) and then its unique-enqueue Lua script
        separately; here both go in one pipeline.  The job hash, the queue
        and the set end up exactly as RQ leaves them
        (tests/test_submissions.py compares the two)."""
        self.queue._prepare_for_queue(job)
        ttl = job.ttl if job.ttl is not None else -1
        pipe = self.redis.pipeline(transaction=False)
        pipe.sadd(self.queue.redis_queues_keys, self.queue.key)
        # EVAL, not EVALSHA: a pipeline cannot load a missing script on the fly;
        # Redis caches the compiled script by its hash either way.
        pipe.eval(UNIQUE_ENQUEUE_SCRIPT, 2, job.key, self.queue.key, job.id, "R", ttl, *_build_hset_args(job))
        _, saved = pipe.execute()
        return saved == 1

    def state(self, submission_id):
        """'queued', 'failed', 'stored' or None when the queue has no such job."""
        try:
            status = Job.fetch(submission_id, connection=self.redis, serializer=JSONSerializer).get_status()
        except NoSuchJobError:
            return None
        if status == JobStatus.FINISHED:
            return "stored"
        if status in (JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED):
            return "failed"
        return "queued"

    def depth(self):
        """Jobs waiting in the queue (not those a worker holds or that wait for a retry)."""
        return self.redis.llen(self.queue.key)

    def ping(self):
        return self.redis.ping()
