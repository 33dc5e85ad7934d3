"""A pytest plugin for RQ's own test suite (see test_rq_suite.py): every
Worker and SimpleWorker it builds is our BatchWorker, and every Redis it
opens at RQ's default address (localhost:6379) is the throwaway one.

Loaded with -p before the suite is collected, so the suite's
`from rq import SimpleWorker, Worker` already finds the substitutes."""

import os

import redis.connection
import rq
import rq.worker

from worker.batch_worker import BatchWorker

PORT = int(os.environ["RQ_SUITE_REDIS_PORT"])
BATCH_SIZE = int(os.environ["RQ_SUITE_BATCH_SIZE"])


class SuiteWorker(BatchWorker):
    def __init__(self, *args, batch_size=BATCH_SIZE, **kwargs):
        super().__init__(*args, batch_size=batch_size, **kwargs)


SuiteWorker.__name__ = SuiteWorker.__qualname__ = "SimpleWorker"
if BATCH_SIZE:  # 0: RQ's own classes, to tell our failures from the environment's
    for module in (rq, rq.worker):
        module.Worker = module.SimpleWorker = SuiteWorker

_connection_init = redis.connection.Connection.__init__


def _init(self, *args, **kwargs):
    _connection_init(self, *args, **kwargs)
    # Only the socket goes elsewhere: the suite also checks the kwargs it parsed from its URLs.
    if self.port == 6379 and self.host in ("localhost", "127.0.0.1"):
        self.port = PORT


redis.connection.Connection.__init__ = _init
