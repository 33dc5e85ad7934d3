"""An erased submission's store job leaves Redis too: its kwargs hold the
answers, and RQ would keep them in the queue, the scheduled registry (a
retry), the failed registry (JOB_FAILURE_TTL, 30 days) or as a finished job
(JOB_RESULT_TTL)."""

import redis
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer


def forget_store_job(connection, submission_id):
    """Delete the submission's store job (its job id is the submission id)
    from Redis, with its queue entry, registries and results, unless a worker
    is running it; return whether it was deleted.

    A running store is left alone: deleting its hash under the worker would
    not stop it, and it stores nothing, since the tombstone is committed
    before this is called (db/schema.sql's trigger refuses the id).  Once it
    finishes, RQ keeps its job, answers included, for JOB_RESULT_TTL, then
    expires it.  So does a store a worker has just taken off the queue and
    not yet marked started (RQ's own dequeue does not look again); the batch
    worker re-reads each status as it starts them and skips a deleted one."""
    key = Job.key_for(submission_id)
    with connection.pipeline() as pipe:
        while True:
            try:
                # A worker starting it now changes its hash: the delete is not sent, and we look again.
                pipe.watch(key)
                status = pipe.hget(key, "status")
                if status is None or status.decode() == JobStatus.STARTED:
                    return False
                job = Job.fetch(submission_id, connection=connection, serializer=JSONSerializer)
                pipe.multi()
                job.delete(pipeline=pipe, remove_from_queue=True)
                pipe.execute()
                return True
            except redis.WatchError:
                continue
            except NoSuchJobError:
                return False


def forget_store_jobs(connection, submission_ids):
    """forget_store_job for many; return how many were deleted.  Most have
    no job left (a finished one expires after JOB_RESULT_TTL): one round
    trip finds those that do."""
    with connection.pipeline(transaction=False) as pipe:
        for submission_id in submission_ids:
            pipe.exists(Job.key_for(submission_id))
        present = pipe.execute()
    return sum(forget_store_job(connection, sid) for sid, there in zip(submission_ids, present) if there)
