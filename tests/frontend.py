"""The front as `make run` starts it, for tests: nginx (proxy/run) in front of
gunicorn (on its unix socket), and the worker, each started with its Procfile command on free
loopback ports, against a fresh database of the test's PostgreSQL and a Redis
of its own (loopback/servers.py)."""

import http.client
import os
import signal
import subprocess
import sys
import urllib.parse
import uuid
from pathlib import Path

import psycopg2
import redis as redis_lib

from tests.http import FIELD
from tests.servers import ROOT, RedisServer, free_port, wait_until

BIN = Path(sys.executable).parent


def procfile():
    """name -> command line, as scripts/supervised reads the Procfile."""
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict((name.strip(), cmd.strip()) for name, cmd in (line.split(":", 1) for line in lines if line.strip()))


class Process:
    """A Procfile line run as scripts/supervised runs it (sh -c), in its own process group."""

    def __init__(self, name, env, log_path):
        self.name = name
        self.log_path = log_path
        self.log_file = open(log_path, "ab")
        self.proc = subprocess.Popen(["/bin/sh", "-c", procfile()[name]], cwd=ROOT, env=env, stdout=self.log_file,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def log(self):
        return self.log_path.read_text(errors="replace")

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(30)
        self.log_file.close()


def request(port, method, path, body=None, headers=None, source=None, timeout=10):
    """One request on a new connection: (status, headers, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout,
                                      source_address=(source, 0) if source else None)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.headers, response.read().decode(errors="replace")
    finally:
        conn.close()


class Front:
    def __init__(self, pg_server, tmp, **settings):
        self.tmp = tmp
        self.redis_server = RedisServer(base_dir=tmp)
        self.redis = redis_lib.Redis.from_url(self.redis_server.url)
        self.database_url = pg_server.create_database(f"front_{uuid.uuid4().hex[:8]}")
        self.port, self.app_port, self.metrics_port = free_port(), free_port(), free_port()
        # As scripts/run makes it: nginx reaches gunicorn here, in a directory only we can open.
        self.app_socket = tmp / "web" / "app.sock"
        self.app_socket.parent.mkdir(mode=0o700)
        self.env = {
            **os.environ,
            "PATH": f"{BIN}:{os.environ['PATH']}",
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "APP_PORT": str(self.app_port),
            "WEB_METRICS_PORT": str(self.metrics_port),
            "APP_SOCKET": str(self.app_socket),
            "APP_FORM_SOCKET": str(self.app_socket.parent / "form.sock"),
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_server.url,
            "SECRET_KEY": "front-test-secret",
            # The load posts each form as soon as it has it: no robot check by time.
            "MIN_FILL_SECONDS": "0",
            "PROMETHEUS_MULTIPROC_DIR": str(tmp / "web-metrics"),
            "PROXY_RUN_DIR": str(tmp / "proxy"),
            "WORKER_NAME_FILE": str(tmp / "worker.name"),
            "WEB_CONCURRENCY": "4",
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
            **settings,
        }
        for key in ("WORKER_DATABASE_URL", "WEB_DATABASE_URL", "DATA_DIR"):
            self.env.pop(key, None)
        self.processes = {}

    def start(self, *names):
        for name in names or ("worker", "web", "proxy"):
            self.processes[name] = Process(name, self.env, self.tmp / f"{name}.log")
        for name in names or ("worker", "web", "proxy"):
            port = {"web": self.app_port, "proxy": self.port}.get(name)
            if port:
                wait_until(lambda: self._answers(name, port), 60, f"{name} to answer /healthz", interval=0.1)
        if "worker" in self.processes:
            wait_until(lambda: self._stored_table(), 60, "the worker to apply the schema", interval=0.1)
        return self

    def _answers(self, name, port):
        assert self.processes[name].alive(), f"{name} exited:\n{self.processes[name].log()[-3000:]}"
        try:
            return request(port, "GET", "/healthz", timeout=2)[0] == 200
        except OSError:
            return False

    def _stored_table(self):
        assert self.processes["worker"].alive(), self.processes["worker"].log()[-3000:]
        return self.count("SELECT count(*) FROM pg_tables WHERE tablename = 'cats'")

    def stop(self, *names):
        for name in names or list(self.processes):
            self.processes.pop(name).stop()

    def destroy(self):
        self.stop()
        self.redis_server.destroy()

    def count(self, sql, args=()):
        conn = psycopg2.connect(self.database_url)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, args)
                return cur.fetchone()[0]
        finally:
            conn.close()

    def stored_ids(self):
        conn = psycopg2.connect(self.database_url)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT submission_id::text FROM cats")
                return [row[0] for row in cur.fetchall()]
        finally:
            conn.close()

    def form(self, source=None):
        """A visitor's form: (cookie header, csrf token), from GET / through the proxy."""
        status, headers, html = request(self.port, "GET", "/", source=source)
        assert status == 200, html
        cookie = "; ".join(c.split(";", 1)[0] for c in headers.get_all("Set-Cookie") or [])
        return cookie, dict(FIELD.findall(html))["csrf_token"]


def post_body(csrf_token, submission_id, name="Flood"):
    return urllib.parse.urlencode({"csrf_token": csrf_token, "submission_id": submission_id,
                                   "name": name, "coat": "tabby", "donut": "glazed"})


FORM_HEADERS = {"Content-Type": "application/x-www-form-urlencoded"}


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]
