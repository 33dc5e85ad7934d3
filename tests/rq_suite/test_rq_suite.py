"""RQ's own test suite, run against our BatchWorker: a peer's judge of
"behaves as RQ", stricter than our own comparison (tests/test_batch_worker.py).

The suite comes from the sdist of the pinned rq (scripts/bootstrap test puts
its tests/ under .venv/rq-suite/VERSION); rq_suite_plugin.py puts BatchWorker
in place of RQ's Worker and SimpleWorker and points it at a throwaway Redis.
It runs at the batch size the worker runs with (WORKER_BATCH_SIZE's default)."""

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from tests.servers import ROOT, RedisServer
from worker.config import Config

RQ_VERSION = re.search(r"^rq==(\S+)", (ROOT / "requirements" / "worker.txt").read_text(), re.M).group(1)
SUITE = Path(sys.prefix) / "rq-suite" / RQ_VERSION

# Tests that cannot apply to a worker that runs jobs in its own process, with
# why; every other test of the suite must pass.
FORKING = "needs RQ's forking Worker: a work horse to kill, time out or inspect"
# A job run in-process records the worker's own pid as its "horse": the
# killer these tests start would kill the suite itself.
KILLS_THE_HORSE = "kills the work horse by pid, here the process running the suite: " + FORKING
NOT_APPLICABLE = {
    "tests/test_spawn_worker.py": "SpawnWorker, RQ's other forking class, is not replaced; " + FORKING,
    "tests/test_commands.py::TestCommands::test_kill_horse_command": KILLS_THE_HORSE,
    "tests/test_dependencies.py::TestDependencies::test_allow_failures_when_work_horse_killed": KILLS_THE_HORSE,
    "tests/test_worker.py::TestWorker::test_horse_fails": FORKING,
    "tests/test_worker.py::TestWorker::test_request_force_stop_ignores_consecutive_signals": FORKING,
    "tests/test_worker.py::TestWorker::"
    "test_monitor_work_horse_handles_performed_job_with_non_zero_exit_code_and_result_ttl_0": FORKING,
    "tests/test_worker.py::WorkerShutdownTestCase::test_work_horse_death_sets_job_failed": FORKING,
    "tests/test_worker.py::WorkerShutdownTestCase::test_work_horse_force_death": FORKING,
    "tests/test_worker.py::WorkerShutdownTestCase::test_stopped_job_failed_even_if_stopped_callback_raises":
        "calls the forking Worker's _handle_stopped_job",
    "tests/test_commands.py::TestCommands::test_stop_execution_command": "stops a job by killing its " + FORKING,
    "tests/test_commands.py::TestCommands::test_stop_job_command": "stops a job by killing its " + FORKING,
    # The forking Worker's heartbeat TTL is its job_monitoring_interval + 60; SimpleWorker's, the job's timeout + 60.
    "tests/test_worker.py::TestWorker::test_get_heartbeat_ttl": "the forking Worker's heartbeat TTL",
    "tests/test_executions.py::TestRegistry::test_execution_added_to_started_job_registry":
        "the forking Worker's heartbeat TTL",
    "tests/test_executions.py::TestRegistry::test_heartbeat": "the forking Worker's heartbeat TTL",
    "tests/test_executions.py::TestRegistry::test_registry_cleanup": "the forking Worker's heartbeat TTL",
    "tests/test_worker.py::TestWorkerSubprocess::test_run_access_self":
        "its job checks, from the `rqworker` subprocess, that it runs in a work horse",
    "tests/test_worker.py::TestWorkerSubprocess::test_run_scheduled_access_self":
        "its job checks, from the `rqworker` subprocess, that it runs in a work horse",
    "tests/test_worker_pool.py::TestWorkerPool::test_check_workers":
        "timing: fails with RQ's own classes too on a loaded 2-core machine",
    # The same pattern: it sends a shutdown command 0.5 s after starting the
    # pool, and a worker not yet listening misses it (seen once under load).
    "tests/test_worker_pool.py::TestWorkerPool::test_reap_workers":
        "timing: its worker must be listening for commands 0.5 s after the pool starts",
}


@pytest.fixture(scope="module")
def suite_redis(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("rq-suite"))
    # The suite flushes its databases hundreds of times: no need to fsync each.
    redis.Redis(port=server.port).config_set("appendfsync", "no")
    yield server
    server.destroy()


def test_rqs_own_suite_passes_against_the_batch_worker(suite_redis, tmp_path):
    assert (SUITE / "tests").is_dir(), f"RQ's suite is missing from {SUITE}: run scripts/bootstrap test"
    batch_size = Config.from_env({}).batch_size
    assert batch_size > 1
    env = {**os.environ,
           # Some tests run RQ's console scripts (rqworker): the venv's bin, even when not activated.
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
           "RQ_SUITE_REDIS_PORT": str(suite_redis.port), "RQ_SUITE_BATCH_SIZE": str(batch_size),
           # sitecustomize.py there loads the plugin in every process the suite starts.
           "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).parent), str(ROOT),
                                                       os.environ.get("PYTHONPATH")]))}
    deselect = [arg for path in NOT_APPLICABLE for arg in ("--deselect", path)]
    # Output to a file, not a pipe, and the suite in a session of its own: a
    # worker pool's processes that a failing test forked and never stopped
    # would otherwise hold the pipe open, and this test would wait for them
    # until its timeout (seen once, on a loaded machine); they go with it.
    with open(tmp_path / "rq-suite.log", "w+") as log:
        suite = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                  "-o", "faulthandler_timeout=120", *deselect, "tests"],
                                 cwd=SUITE, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            returncode = suite.wait(timeout=900)
        finally:
            try:
                os.killpg(suite.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass  # nothing of the suite's is left
        log.seek(0)
        output = log.read()
    summary = output.strip().splitlines()[-1] if output.strip() else ""
    print(summary)
    assert returncode == 0, output[-25000:]
    assert re.search(r"\b[1-9]\d{2} passed\b", summary), summary  # the suite ran, not an empty collection
