"""`python -m tests.faults.stop_before_start`: the real worker, except that it
stops itself (SIGSTOP) once it has taken a batch's ids and before it starts
them, so that a test can SIGKILL it at exactly that moment."""

import os
import signal
import sys

from worker.__main__ import main
from worker.batch_worker import BatchWorker

_start = BatchWorker._start


def _stop_then_start(self, *args, **kwargs):
    os.kill(os.getpid(), signal.SIGSTOP)
    return _start(self, *args, **kwargs)


BatchWorker._start = _stop_then_start

if __name__ == "__main__":
    sys.exit(main())
