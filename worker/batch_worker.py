"""The worker class that stores many submissions at once, each still one RQ job.

Written against rq==3.0.0 (requirements/worker.txt pins it): it calls the
same pieces of RQ that the per-job path calls (Execution.create,
Job.prepare_for_execution, Job._handle_success, Job.cleanup,
cleanup_execution), in the same order, but for a whole batch in one
pipeline.  Check them again before moving to another RQ version;
tests/test_batch_worker.py compares what both paths leave in Redis.

Per job, RQ's SimpleWorker makes about a dozen round trips to Redis and one
INSERT + COMMIT, and those, not the INSERT itself, were most of a worker's
time.  When RQ has dequeued a job that can batch (a submission, on a
worker of one queue, within work()'s max_jobs) and more are waiting:

1. it moves up to batch_size - 1 more job ids from the queue onto RQ's
   intermediate list in one atomic step, where RQ's dequeue (LMOVE) would
   have put each of them;
2. in one MULTI/EXEC, watching the jobs' hashes: every job still queued
   moves to STARTED, each with its own execution in the StartedJobRegistry
   (so an abandoned batch is recovered job by job, as an abandoned single
   job is); a job cancelled or deleted since is left alone; the first job
   that cannot batch and every id after it go back to the front of the
   queue, in order, so nothing runs out of turn;
3. it stores every row with one INSERT in one transaction (ON CONFLICT DO
   NOTHING, so a re-run after a crash stores nothing twice);
4. in one MULTI/EXEC, watching the jobs' dependents: every job moves to
   FINISHED (status, job hash, result, finished registry, expiry, execution
   removed, the worker's counters, the batch's span once in its working
   time); a job that has dependents finishes through RQ's own
   handle_job_success, which releases them.

If the INSERT fails because of one row, each job runs alone through RQ's own
per-job path, so the bad one fails alone (at once: worker/failures.py) and
the others are stored.  If the database is away, each job fails through
RQ's per-job failure path and retries with its own back-off.

If the worker is SIGKILLed between steps 1 and 2 (a few milliseconds), the
ids wait on the intermediate list, where RQ's maintenance fails each one
after a minute ("stuck in intermediate queue"), spending one retry, exactly
as it does for the one job RQ's own dequeue had moved there.  A SIGTERM
waits: the worker is BUSY from the moment it takes the ids.
"""

import inspect
import sys

import psycopg2
import redis
from rq.executions import Execution
from rq.job import JobStatus
from rq.timeouts import JobTimeoutException
from rq.worker import WorkerStatus
from rq.utils import now

import submission as payload
from submission.cap import Cap
from submission import STORE_JOB

from . import jobs
from .survey_worker import SurveyWorker

# LPOP with a count, then RPUSH onto the intermediate list, in one atomic
# step: an id is always on one of the two lists (RQ's LMOVE keeps the same promise).
TAKE_WAITING = """
local ids = redis.call('LPOP', KEYS[1], ARGV[1])
if ids then redis.call('RPUSH', KEYS[2], unpack(ids)) end
return ids
"""


class BatchWorker(SurveyWorker):
    def __init__(self, *args, batch_size=200, **kwargs):
        super().__init__(*args, **kwargs)
        self.batch_size = batch_size
        self._take_waiting = self.connection.register_script(TAKE_WAITING)
        self._jobs_left = None  # work()'s max_jobs, less the jobs run since
        self._max_jobs_stop = False

    def work(self, *args, **kwargs):
        # RQ counts one job per execute_job call; a batch is many.
        self._jobs_left = inspect.signature(super().work).bind(*args, **kwargs).arguments.get("max_jobs")
        try:
            return super().work(*args, **kwargs)
        finally:
            if self._max_jobs_stop:
                self._stop_requested = self._max_jobs_stop = False  # the next work() starts afresh, as RQ's does

    def execute_job(self, job, queue):
        # From here a SIGTERM waits for this call (RQ's warm shutdown) instead
        # of ending the loop with ids taken; Redis hears of it when they start.
        self._state = WorkerStatus.BUSY
        room = self.batch_size - 1 if self._jobs_left is None else min(self.batch_size, self._jobs_left) - 1
        ids = []
        if room > 0 and len(self.queues) == 1 and self._batchable(job):
            ids = [i.decode() for i in self._take_waiting(keys=[queue.key, queue.intermediate_queue_key], args=[room]) or ()]
        if not ids:
            super().execute_job(job, queue)
            if self._jobs_left is not None:
                self._jobs_left -= 1
            return
        batch, executions = self._start(job, ids, queue)
        if batch:
            self._run_batch(batch, executions, queue)
        if self._jobs_left is not None:
            self._jobs_left -= len(batch)
            # work() counts this call as one job; when the batch spent the rest of max_jobs, stop it here.
            if self._jobs_left <= 0 and not self._stop_requested:
                self._stop_requested = self._max_jobs_stop = True
        self.set_state(WorkerStatus.IDLE)

    @staticmethod
    def _batchable(job):
        try:
            payload.parse(job.kwargs.get("submission"))
            return (job.func_name == STORE_JOB and not job.args and set(job.kwargs) == {"submission"}
                    and not (job._success_callback_name or job._failure_callback_name
                             or job._stopped_callback_name or job.webhooks or job.repeats_left
                             or job._dependency_ids or job.has_rate_limit))
        except Exception:  # noqa: BLE001 - unreadable data or payload: alone, RQ's path fails it with its reason
            return False

    def _start(self, job, ids, queue):
        """Worker.prepare_execution and prepare_job_execution for the batch, in
        one transaction that also returns what cannot batch to the queue."""
        fetched = self.job_class.fetch_many(ids, self.connection, self.serializer)
        cut = next((n for n, other in enumerate(fetched) if other and not self._batchable(other)), len(ids))
        candidates = {job.id: job}  # an id queued twice runs once, as its job hash is one
        for other in fetched[:cut]:
            if other:  # a job whose hash is gone is skipped, as RQ's dequeue skips it
                candidates.setdefault(other.id, other)
        candidates = list(candidates.values())
        with self.connection.pipeline() as pipe:
            while True:
                try:
                    # Cancelled or deleted since it was taken: RQ's dequeue would not have run it.
                    pipe.watch(*(other.key for other in candidates))
                    with self.connection.pipeline(transaction=False) as reads:
                        for other in candidates:
                            reads.hget(other.key, "status")
                        queued = [s is not None and s.decode() == JobStatus.QUEUED for s in reads.execute()]
                    batch = [other for other, ok in zip(candidates, queued) if ok]
                    pipe.multi()
                    executions = [self._prepare(other, pipe) for other in batch]
                    for job_id in [job.id] + ids:
                        pipe.lrem(queue.intermediate_queue_key, 1, job_id)
                    if ids[cut:]:
                        pipe.lpush(queue.key, *reversed(ids[cut:]))
                    self.set_state(WorkerStatus.BUSY, pipeline=pipe)
                    if batch:
                        self.heartbeat(max(self.get_heartbeat_ttl(other) for other in batch), pipeline=pipe)
                    pipe.execute()
                    return batch, executions
                except redis.WatchError:
                    continue

    def _prepare(self, job, pipe):
        ttl = self.get_heartbeat_ttl(job)
        execution = Execution.create(job, ttl, pipeline=pipe, worker_name=self.name)
        self.executions[execution.id] = execution
        # RQ sends job.heartbeat() first: prepare_for_execution writes the same field.
        job.prepare_for_execution(self.name, pipeline=pipe)
        pipe.persist(job.key)
        return execution

    def _run_batch(self, batch, executions, queue):
        timeout = min(job.timeout or self.queue_class.DEFAULT_TIMEOUT for job in batch)
        try:
            with self.death_penalty_class(timeout, JobTimeoutException, job_id=batch[0].id):
                results = jobs.store_submissions([job.kwargs["submission"] for job in batch],
                                                 Cap(self.connection, queue.name))
        except (psycopg2.OperationalError, psycopg2.InterfaceError, JobTimeoutException):
            # The database is away: retrying each job alone now would only fail again.
            exc_info = sys.exc_info()
            for job, execution in zip(batch, executions):
                self._finalize_failure(job, queue, execution, exc_info)
            return
        except psycopg2.Error as exc:
            self.log.warning("Worker %s: batch of %d failed (%s); storing each job alone",
                             self.name, len(batch), type(exc).__name__)
            results = None
        if results is None:
            # Outside the except block: each job's traceback is its own, not chained under the batch's.
            for job, execution in zip(batch, executions):
                self.perform_job(job, queue, execution)
            return
        self._finish(batch, executions, results, queue)

    def _finish(self, batch, executions, results, queue):
        """handle_execution_ended and handle_job_success, for every job, in one transaction."""
        ended = now()
        for job, result in zip(batch, results):
            # RQ's handle_execution_ended also sends the heartbeat on its own;
            # _handle_success saves the whole job hash, last_heartbeat included.
            job.ended_at = job.last_heartbeat = ended
            job._result = result
            job._status = JobStatus.FINISHED
        with self.connection.pipeline() as pipe:
            while True:
                try:
                    # A dependent enqueued while the batch ran: RQ's handle_job_success releases it.
                    pipe.watch(*(job.dependents_key for job in batch))
                    with self.connection.pipeline(transaction=False) as reads:
                        for job in batch:
                            reads.exists(job.dependents_key)
                        has_dependents = reads.execute()
                    plain = [(job, execution) for job, execution, dependents
                             in zip(batch, executions, has_dependents) if not dependents]
                    pipe.multi()
                    for job, execution in plain:
                        result_ttl = job.get_result_ttl(self.default_result_ttl)
                        if result_ttl != 0:
                            job._handle_success(result_ttl, pipeline=pipe, worker_name=self.name,
                                                execution_id=execution.id, execution_started_at=execution.created_at,
                                                execution_ended_at=job.ended_at)
                        job.cleanup(result_ttl, pipeline=pipe, remove_from_queue=False)
                        self.cleanup_execution(job, pipeline=pipe, execution=execution)
                    if plain:
                        pipe.hincrby(self.key, "successful_job_count", len(plain))
                        # One worker, one span of work: counted once, not once per job.
                        self.increment_total_working_time(ended - min(job.started_at for job, _ in plain), pipe)
                    pipe.execute()
                    break
                except redis.WatchError:
                    continue
        for job, execution, dependents in zip(batch, executions, has_dependents):
            if dependents:
                self.handle_job_success(job, queue, queue.started_job_registry, execution)
        self.log.info("Worker %s: %s: batch of %d jobs OK", self.name, batch[0].origin, len(batch))
