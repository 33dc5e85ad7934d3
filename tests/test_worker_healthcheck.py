"""The container healthcheck tells a registered, heartbeating worker from a gone one."""

import os
import signal
import subprocess
import sys

from tests.servers import ROOT, wait_until


def healthcheck(env):
    return subprocess.run([sys.executable, "-m", "worker.healthcheck"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=30)


def test_healthcheck_follows_the_worker(env, tmp_path):
    child_env = {**os.environ, **env, "WORKER_NAME_FILE": str(tmp_path / "worker.name")}
    before = healthcheck(child_env)
    assert before.returncode == 1 and "not registered yet" in before.stderr

    worker = subprocess.Popen([sys.executable, "-m", "worker"], cwd=ROOT, env=child_env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: healthcheck(child_env).returncode == 0, 30, "a healthy worker", interval=0.3)
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0  # warm shutdown with nothing in hand: a clean exit

    after = healthcheck(child_env)
    assert after.returncode == 1 and "is not registered" in after.stderr
