"""The worker class that stores many submissions at once, each still one RQ job.

Written against rq==3.0.0 (requirements/worker.txt pins it): it calls the
same pieces of RQ that the per-job path calls (Execution.create,
Job.prepare_for_execution, Job._handle_success, Job.cleanup,
cleanup_execution), in the same order, but for a whole batch in one
pipeline.  Check them again before moving to another RQ version;
tests/test_batch_worker.py compares what both paths leave in Redis.

Per job, RQ's SimpleWorker makes about a dozen round trips to Redis and one
INSERT + COMMIT, and those, not the INSERT itself, were most of a worker's
time.  When RQ has dequeued a job and more are waiting, this worker:

1. moves up to batch_size - 1 more job ids from the queue onto RQ's
   intermediate list in one atomic step, where RQ's dequeue (LMOVE) would
   have put each of them; if it dies now, RQ's maintenance recovers them
   from that list as it does any job dequeued by a worker that died;
2. in one MULTI/EXEC, moves every job to STARTED, each with its own
   execution in the StartedJobRegistry (so an abandoned batch is recovered
   job by job, as an abandoned single job is) and off the intermediate list;
3. stores every row with one INSERT in one transaction (ON CONFLICT DO
   NOTHING, so a re-run after a crash stores nothing twice);
4. in one MULTI/EXEC, moves every job to FINISHED: status, job hash, result,
   finished registry, expiry, execution removed, the worker's counters.

If the INSERT fails because of one row, each job runs alone through RQ's own
per-job path, so the bad one fails alone (at once: worker/failures.py) and
the others are stored.  If the database is away, each job fails through
RQ's per-job failure path and retries with its own back-off.  A job RQ would
treat specially (callbacks, webhooks, repeats, dependencies, a rate limit,
another function) never joins a batch; submissions have none of these.
"""

import sys
from datetime import timedelta

import psycopg2
from rq.executions import Execution
from rq.job import JobStatus
from rq.timeouts import JobTimeoutException
from rq.worker import WorkerStatus
from rq.utils import now

import submission as payload

from . import jobs
from .survey_worker import SurveyWorker

STORE_JOB = "worker.jobs.store_submission"

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

    def execute_job(self, job, queue):
        if self.batch_size <= 1:
            return super().execute_job(job, queue)
        # From here a SIGTERM must wait for the batch (RQ's warm shutdown), not
        # interrupt it before its jobs are started; Redis hears of it in _start.
        self._state = WorkerStatus.BUSY
        ids = self._take_waiting(keys=[queue.key, queue.intermediate_queue_key], args=[self.batch_size - 1])
        if not ids:
            return super().execute_job(job, queue)
        fetched = self.job_class.fetch_many([i.decode() for i in ids], self.connection, self.serializer)
        batch, alone, seen = [], [], {job.id}
        for other in filter(None, fetched):  # a job whose hash is gone is skipped, as RQ's dequeue skips it
            (alone if other.id in seen or not self._batchable(other) else batch).append(other)
            seen.add(other.id)
        if self._batchable(job):
            batch.insert(0, job)
        else:
            alone.insert(0, job)
        if len(batch) > 1:
            self._run_batch(batch, queue)
        else:
            alone = batch + alone
        for other in alone:
            super().execute_job(other, queue)
        self.set_state(WorkerStatus.IDLE)

    @staticmethod
    def _batchable(job):
        try:
            payload.parse(job.kwargs.get("submission"))
        except Exception:  # noqa: BLE001 - unreadable data or payload: alone, RQ's path fails it with its reason
            return False
        return (job.func_name == STORE_JOB and not job.args and set(job.kwargs) == {"submission"}
                and not (job._success_callback_name or job._failure_callback_name or job._stopped_callback_name
                         or job.webhooks or job.repeats_left or job._dependency_ids or job.has_rate_limit))

    def _run_batch(self, batch, queue):
        executions = self._start(batch, queue)
        timeout = min(job.timeout or self.queue_class.DEFAULT_TIMEOUT for job in batch)
        try:
            with self.death_penalty_class(timeout, JobTimeoutException, job_id=batch[0].id):
                results = jobs.store_submissions([payload.parse(job.kwargs["submission"]) for job in batch])
        except (psycopg2.OperationalError, psycopg2.InterfaceError, JobTimeoutException):
            # The database is away: retrying each job alone now would only fail again.
            exc_info = sys.exc_info()
            for job, execution in zip(batch, executions):
                self._finalize_failure(job, queue, execution, exc_info)
            return
        except psycopg2.Error as exc:
            self.log.warning("Worker %s: batch of %d failed (%s); storing each job alone",
                             self.name, len(batch), type(exc).__name__)
            for job, execution in zip(batch, executions):
                self.perform_job(job, queue, execution)
            return
        self._finish(batch, executions, results)

    def _start(self, batch, queue):
        """Worker.prepare_execution and prepare_job_execution, for every job, in one transaction."""
        with self.connection.pipeline() as pipe:
            executions = []
            for job in batch:
                ttl = self.get_heartbeat_ttl(job)
                execution = Execution.create(job, ttl, pipeline=pipe, worker_name=self.name)
                self.executions[execution.id] = execution
                executions.append(execution)
                # RQ sends job.heartbeat() first: prepare_for_execution writes the same field.
                job.prepare_for_execution(self.name, pipeline=pipe)
                pipe.persist(job.key)
                pipe.lrem(queue.intermediate_queue_key, 1, job.id)
            self.set_state(WorkerStatus.BUSY, pipeline=pipe)
            self.heartbeat(max(self.get_heartbeat_ttl(job) for job in batch), pipeline=pipe)
            pipe.execute()
        return executions

    def _finish(self, batch, executions, results):
        """handle_execution_ended and handle_job_success, for every job, in one transaction."""
        working = timedelta()
        with self.connection.pipeline() as pipe:
            for job, execution, result in zip(batch, executions, results):
                # RQ's handle_execution_ended also sends the heartbeat on its own;
                # _handle_success saves the whole job hash, last_heartbeat included.
                job.ended_at = job.last_heartbeat = now()
                job._result = result
                job._status = JobStatus.FINISHED
                result_ttl = job.get_result_ttl(self.default_result_ttl)
                if result_ttl != 0:
                    job._handle_success(result_ttl, pipeline=pipe, worker_name=self.name,
                                        execution_id=execution.id, execution_started_at=execution.created_at,
                                        execution_ended_at=job.ended_at)
                job.cleanup(result_ttl, pipeline=pipe, remove_from_queue=False)
                self.cleanup_execution(job, pipeline=pipe, execution=execution)
                working += job.ended_at - job.started_at
            pipe.hincrby(self.key, "successful_job_count", len(batch))
            self.increment_total_working_time(working, pipe)
            pipe.execute()
        self.log.info("Worker %s: %s: batch of %d jobs OK", self.name, batch[0].origin, len(batch))
