"""The web as web/gunicorn.conf.py starts it, on free ports, for tests that
need the real server: several processes, the two listeners, the timeout."""

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.http import Browser
from tests.scrape import samples
from tests.servers import ROOT, free_port, wait_until


class Gunicorn:
    def __init__(self, env, tmp_path, metrics_dir, workers=3, args=()):
        self.port = free_port()
        self.metrics_port = free_port()
        self.log_path = tmp_path / f"gunicorn-{self.port}.log"
        self.env = {**os.environ, **env, "APP_PORT": str(self.port), "WEB_METRICS_PORT": str(self.metrics_port),
                    "WEB_CONCURRENCY": str(workers),
                    "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), "LOG_FORMAT": "json"}
        self.proc = subprocess.Popen(
            [Path(sys.executable).parent / "gunicorn", "--config", "web/gunicorn.conf.py", "--no-control-socket",
             *args],
            cwd=ROOT, env=self.env, stdout=open(self.log_path, "wb"), stderr=subprocess.STDOUT)
        self.browser = Browser(f"http://127.0.0.1:{self.port}")
        self.operator = Browser(f"http://127.0.0.1:{self.metrics_port}")
        wait_until(self.ready, 60, "gunicorn to answer /readyz", interval=0.2)

    def ready(self):
        assert self.proc.poll() is None, self.log_path.read_text()[-3000:]
        try:
            return self.browser.request("/readyz", timeout=2)[0] == 200
        except OSError:
            return False

    def scrape(self):
        status, _, body = self.operator.request("/metrics")
        assert status == 200, body
        return samples(body)

    def log_lines(self):
        return [json.loads(line) for line in self.log_path.read_text().splitlines()]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)
