"""The RQ worker class: RQ's SimpleWorker (jobs run in this process, so the
database connection outlives each job), heartbeating at most once a second.

SimpleWorker refreshes its registration three times per job (before and
after dequeuing, and after the job), each time three unpipelined Redis
commands (HSET last_heartbeat, EXPIRE the worker key, EXPIRE its
executions), 9 of the 57 commands a job cost.  The registration lives for
worker_ttl + 60 s, so refreshing it once a second keeps every guarantee:
`rq info` and the healthcheck still see the worker, and a dead worker's
jobs are still recovered when its registration expires.  Heartbeats RQ
sends inside a pipeline, or with an explicit timeout (job start), are
untouched."""

from rq import SimpleWorker
from rq.utils import now

HEARTBEAT_EVERY_S = 1.0


class SurveyWorker(SimpleWorker):
    def heartbeat(self, timeout=None, pipeline=None):
        if (timeout is None and pipeline is None and self.last_heartbeat is not None
                and (now() - self.last_heartbeat).total_seconds() < HEARTBEAT_EVERY_S):
            return
        super().heartbeat(timeout, pipeline)
