"""PostgreSQL hung for 15 s (SIGSTOP: a partition, a stuck disk, an
overloaded server all look like this; its kernel still accepts and
acknowledges TCP) under steady visits: form, post, receipt.  The form and the
post need only Redis, so they keep answering quickly (p99 under 1 s): the
web's reads give up after WEB_DB_TIMEOUT, and at most WEB_DB_READERS of its
processes wait on PostgreSQL at all.  No job stays STARTED past JOB_TIMEOUT,
and after the thaw every accepted post is stored exactly once."""

import collections
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from tests.faults.conftest import failed
from tests.faults.test_held_lock import started_spans
from tests.frontend import percentile
from tests.http import FIELD, Browser
from tests.servers import wait_until

FREEZE_S = 15
VISITS_PER_S = 20
JOB_TIMEOUT = 10  # WORKER_DB_TIMEOUT + 2 s client margin + 1 s pause, with room to spare
WORKER_DB_TIMEOUT = 2


def _server_processes(pg_server):
    """The postmaster and its children (each backend is a session of its own, not in its group)."""
    postmaster = int((Path(pg_server.datadir) / "postmaster.pid").read_text().split()[0])
    children = Path(f"/proc/{postmaster}/task/{postmaster}/children").read_text().split()
    return [postmaster, *map(int, children)]


@contextmanager
def frozen(pg_server):
    """SIGSTOP the test's PostgreSQL (postmaster first, so it forks nothing new); SIGCONT whatever happens."""
    pids = _server_processes(pg_server)
    try:
        postmaster, *children = pids
        os.kill(postmaster, signal.SIGSTOP)
        for pid in children:
            try:
                os.kill(pid, signal.SIGSTOP)
            except ProcessLookupError:
                pass  # a backend whose session ended since it was listed: nothing left to freeze
        yield
    finally:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass


class Visits:
    """VISITS_PER_S visitors a second, each: GET /, POST, GET its receipt."""

    def __init__(self, port):
        self.base = f"http://127.0.0.1:{port}"
        self.timings = []  # (step, started at, seconds, status)
        self.accepted = []
        self.stop = threading.Event()
        self.pool = ThreadPoolExecutor(max_workers=40)
        self.thread = threading.Thread(target=self.run, daemon=True)

    def timed(self, step, call):
        started = time.monotonic()
        try:
            result = call()
            status = result[0]
        except OSError as exc:
            result, status = None, repr(exc)
        self.timings.append((step, started, time.monotonic() - started, status))
        return result

    def visit(self):
        browser = Browser(self.base)
        page = self.timed("form", lambda: browser.request("/"))
        if not page or page[0] != 200:
            return
        fields = dict(FIELD.findall(page[2]))
        fields.update(name="Frost", coat="tabby", donut="glazed")
        post = self.timed("post", lambda: browser.request("/", fields))
        if post and post[0] == 303:
            self.accepted.append(fields["submission_id"])
            self.timed("receipt", lambda: browser.request(f"/submissions/{fields['submission_id']}.json"))

    def run(self):
        while not self.stop.is_set():
            self.pool.submit(self.visit)
            self.stop.wait(1 / VISITS_PER_S)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(10)
        self.pool.shutdown(wait=True)


def test_a_frozen_database_does_not_stall_the_form_or_the_post(
        pg_server, start_worker, start_web, redis, stored_ids, capsys):
    worker = start_worker(WORKER_DB_TIMEOUT=str(WORKER_DB_TIMEOUT))
    _, browser = start_web(JOB_TIMEOUT=str(JOB_TIMEOUT))
    port = browser.base_url.rsplit(":", 1)[1]
    with Visits(port) as visits:
        time.sleep(1)
        with frozen(pg_server):
            t0 = time.monotonic()
            spans = started_spans(redis, FREEZE_S)
            t1 = time.monotonic()
        time.sleep(1)

    during = [t for t in visits.timings if t0 <= t[1] and t[1] + t[2] <= t1 + 1]
    by_step = collections.defaultdict(list)
    for step, _, seconds, status in during:
        by_step[step].append((seconds, status))
    with capsys.disabled():
        print(f"\nduring a {FREEZE_S}s freeze: " + "; ".join(
            f"{step}: {len(v)}, p50 {percentile([s for s, _ in v], 50) * 1000:.0f} ms, "
            f"p99 {percentile([s for s, _ in v], 99) * 1000:.0f} ms, {dict(collections.Counter(st for _, st in v))}"
            for step, v in sorted(by_step.items())))
    for step in ("form", "post"):
        times = [seconds for seconds, _ in by_step[step]]
        assert len(times) > FREEZE_S * VISITS_PER_S / 2, (step, len(times))
        assert percentile(times, 99) < 1.0, (step, sorted(times)[-10:])
    assert {status for _, status in by_step["form"]} == {200}
    assert {status for _, status in by_step["post"]} == {303}
    # A receipt answers from Redis while the row can't be read.
    assert {status for _, status in by_step["receipt"]} == {200}
    assert not spans or max(spans.values()) < JOB_TIMEOUT, spans

    wait_until(lambda: set(stored_ids()) >= set(visits.accepted), 60, "every accepted post after the thaw",
               interval=0.5)
    assert sorted(stored_ids()) == sorted(visits.accepted)  # each exactly once
    assert failed(redis).count == 0
    assert worker.alive()
