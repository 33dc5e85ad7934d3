"""The RQ worker class: RQ's SimpleWorker (jobs run in this process, so the
database connection outlives each job), heartbeating at most once a second,
and remembering whether it was asked to stop.

SimpleWorker refreshes its registration three times per job (before and
after dequeuing, and after the job), each time three unpipelined Redis
commands (HSET last_heartbeat, EXPIRE the worker key, EXPIRE its
executions), 9 of the 57 commands a job cost.  The registration lives for
worker_ttl + 60 s, so refreshing it once a second keeps every guarantee:
`rq info` and the healthcheck still see the worker, and a dead worker's
jobs are still recovered when its registration expires.  Heartbeats RQ
sends inside a pipeline, or with an explicit timeout (job start), are
untouched."""

import functools

import psycopg2
import redis
from rq import SimpleWorker
from rq.utils import now

from submission.cap import Cap

from . import erasure, jobs

HEARTBEAT_EVERY_S = 1.0


class SurveyWorker(SimpleWorker):
    # RQ's work loop also ends, quietly or by raising, when it loses Redis in
    # the middle of a job; then `python -m worker` starts a new loop, unless
    # this says a SIGTERM or SIGINT asked it to stop.
    stop_requested = False

    def request_stop(self, signum, frame):
        self.stop_requested = True
        super().request_stop(signum, frame)

    def heartbeat(self, timeout=None, pipeline=None):
        if (timeout is None and pipeline is None and self.last_heartbeat is not None
                and (now() - self.last_heartbeat).total_seconds() < HEARTBEAT_EVERY_S):
            return
        super().heartbeat(timeout, pipeline)

    def run_maintenance_tasks(self):
        super().run_maintenance_tasks()
        # MAX_RESPONSES's count: settle what a crash or a race left pending
        # and give back what was never queued (submission/cap.py).
        for queue in self.queues:
            try:
                counts = [Cap(self.connection, queue.name, table) for table in Cap.tables(self.connection, queue.name)]
                for count in counts:
                    settled, dropped = count.reconcile(functools.partial(jobs.held_by_database, table=count.table))
                    if settled or dropped:
                        self.log.info("Worker %s: %s: %s: count reconciled, %d settled, %d never queued given back",
                                      self.name, queue.name, count.table, settled, dropped)
            except (redis.RedisError, psycopg2.Error) as exc:
                self.log.warning("Worker %s: could not reconcile the count of answers taken: %s", self.name, exc)
        # An erased answer's store job, looked for again (worker/erasure.py).
        try:
            erasure.run_second_passes(self.connection)
        except redis.RedisError as exc:
            self.log.warning("Worker %s: could not run the erasures' second passes: %s", self.name, exc)
