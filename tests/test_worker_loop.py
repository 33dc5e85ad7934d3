"""`python -m worker`'s loop (worker/__main__.py's work): after RQ's loop
quits on a Redis timeout, the next loop works on a Redis client of its own,
never the pool that the quitting loop's pubsub thread may still be reading."""

import signal

import redis as redis_lib

import worker.__main__ as worker_main
from submission import STORE_JOB
from tests.faults.conftest import queue, submission
from worker.batch_worker import BatchWorker
from worker.config import Config as WorkerConfig


def test_a_loop_that_lost_redis_hands_nothing_of_its_client_to_the_next(env, redis, rows, tmp_path, monkeypatch):
    queued = submission()
    sid = queued["id"]
    queue(redis).enqueue_call(STORE_JOB, kwargs={"submission": queued}, job_id=sid)
    dequeue = BatchWorker.dequeue_job_and_maintain_ttl
    calls = []

    def dequeue_or_quit(self, timeout, max_idle_time=None):
        calls.append(self.name)
        if len(calls) == 1:
            raise redis_lib.TimeoutError("Timeout reading from socket")  # RQ's loop: "quitting..."
        if not queue(redis).count:
            self.request_stop(signal.SIGTERM, None)  # idle, so RQ raises StopRequested and the loop ends
        return dequeue(self, timeout, max_idle_time)

    monkeypatch.setattr(BatchWorker, "dequeue_job_and_maintain_ttl", dequeue_or_quit)
    workers = []

    def build(config, connection):
        workers.append(worker_main.build_worker(config, connection))
        return workers[-1]

    config = WorkerConfig.from_env(env)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        assert worker_main.work(config, redis, burst=False, build=build, name_file=tmp_path / "name") == 0
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)

    assert [w.name for w in workers] == [calls[0], calls[1]]
    pools = [w.connection.connection_pool for w in workers]
    assert pools[0] is not pools[1] and redis.connection_pool not in pools
    # Closed when their loops ended: what a straggling thread still holds reads nothing of anyone's.
    for pool in pools:
        assert all(conn._sock is None for conn in pool._available_connections + list(pool._in_use_connections))
    assert [row["submission_id"] for row in rows()] == [sid]
