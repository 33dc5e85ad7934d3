"""Many at once: 50 visitors submitting concurrently through gunicorn, two
workers storing: every accepted submission is exactly one row, and nothing
fails anywhere."""

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from tests.faults.conftest import failed, queue
from tests.servers import wait_until

SUBMITTERS = 50
EACH = 40  # 2000 submissions
DOUBLE_CLICK_EVERY = 10  # and every 10th is posted twice


def test_concurrent_submitters_and_workers_store_each_submission_once(
        start_web, start_worker, redis, stored_ids):
    web, browser = start_web()
    workers = [start_worker(), start_worker()]
    accepted, errors = [], []
    lock = threading.Lock()

    def submitter(n):
        visitor = type(browser)(browser.base_url)  # a visitor with its own cookies
        hidden = visitor.form()
        for i in range(EACH):
            data = {**hidden, "submission_id": str(uuid.uuid4()), "name": f"Cat {n}-{i}",
                    "coat": "tabby", "donut": "maple"}
            posts = 2 if i % DOUBLE_CLICK_EVERY == 0 else 1
            for _ in range(posts):
                status, headers, body = visitor.request("/", data, timeout=30)
                if status != 303:
                    with lock:
                        errors.append((status, body[:300]))
                    break
            else:
                with lock:
                    accepted.append(data["submission_id"])

    started = time.monotonic()
    with ThreadPoolExecutor(SUBMITTERS) as pool:
        list(pool.map(submitter, range(SUBMITTERS)))
    posted = time.monotonic() - started

    assert errors == []
    assert len(accepted) == SUBMITTERS * EACH
    wait_until(lambda: len(stored_ids()) >= len(accepted), 120, "every row", interval=0.5)
    print(f"{len(accepted)} submissions posted in {posted:.1f}s, stored after {time.monotonic() - started:.1f}s")
    ids = stored_ids()
    assert len(ids) == len(set(ids))  # no duplicates
    assert sorted(ids) == sorted(accepted)
    assert failed(redis).count == 0 and queue(redis).count == 0
    for proc in workers + [web]:
        assert proc.alive()
        assert "Traceback" not in proc.log()
    for proc in workers:
        assert " ERROR " not in proc.log()
