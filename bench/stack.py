"""The system under test: throwaway PostgreSQL and Redis (loopback/servers.py),
the web and the workers started with the runner's own commands, and what the
benchmark reads from them (rows, Redis memory, peak RSS)."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import psycopg2
import redis

from loopback.browser import Browser
from loopback.servers import PostgresServer, RedisServer, free_port, wait_until
from worker.config import Config as WorkerConfig
from worker.migrate import apply_schema

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

# The slow database of scenario (b): every insert into cats sleeps 20 ms first.
SLOW_TRIGGER = """
CREATE OR REPLACE FUNCTION bench_slow_insert() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN PERFORM pg_sleep(0.02); RETURN NEW; END $$;
DROP TRIGGER IF EXISTS bench_slow ON answers.cats;
CREATE TRIGGER bench_slow BEFORE INSERT ON answers.cats FOR EACH ROW EXECUTE FUNCTION bench_slow_insert();
"""
FAST_AGAIN = "DROP TRIGGER IF EXISTS bench_slow ON answers.cats"

# The web designs the benchmark runs, as gunicorn app URIs (None: ours, the
# wsgi_app of web/gunicorn.conf.py).  The others are in bench/naive_app.py.
WEB_APPS = {
    "queue": None,
    "naive": "bench.naive_app:create_app()",
    "without_queue": "bench.naive_app:create_app(store=False)",
}

# submitted_at is set by the web when it accepts the form, stored_at by
# PostgreSQL when the worker inserts the row.
ROW_STATS = """
SELECT count(*),
       count(DISTINCT submission_id),
       extract(epoch FROM max(stored_at) - min(stored_at)),
       1000 * extract(epoch FROM percentile_cont(0.5) WITHIN GROUP (ORDER BY stored_at - submitted_at)),
       1000 * extract(epoch FROM percentile_cont(0.99) WITHIN GROUP (ORDER BY stored_at - submitted_at))
FROM cats
"""


def children(pid):
    """Every live descendant of pid (gunicorn's workers, RQ's scheduler)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        kids = parents.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def peak_rss_mb(pid):
    """The process's high-water resident set (VmHWM), in MiB; 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class Service:
    """One process we started, in its own process group so that stopping it
    also stops what it forked (and nothing else)."""

    def __init__(self, name, argv, env, log_path):
        self.name = name
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def alive(self):
        return self.proc.poll() is None

    def wait_healthy(self, url, timeout=60):
        """Until GET url/healthz answers 200; fails at once if the process exits."""
        browser = Browser(url)

        def up():
            if not self.alive():
                raise RuntimeError(f"{self.name} exited; see {self.log.name}")
            try:
                return browser.request("/healthz", timeout=2)[0] == 200
            except OSError:
                return False

        wait_until(up, timeout, self.name)

    def peak_rss_mb(self, with_children=False):
        pids = [self.proc.pid] + (children(self.proc.pid) if with_children else [])
        return sum(peak_rss_mb(p) for p in pids)

    def stop(self, timeout=30):
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        try:
            # Anything it forked that outlived it (the process group keeps its id).
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.log.close()


class Stack:
    def __init__(self, workdir, web_concurrency=None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.pg = PostgresServer(fsync=True)
        self.redis_server = RedisServer()
        self.database_url = self.pg.create_database("survey")
        apply_schema(self.database_url, WorkerConfig.from_env({}).schema_path)
        self.redis = redis.Redis.from_url(self.redis_server.url)
        self.web_concurrency = web_concurrency
        self.web = None
        self.web_mode = None
        self.web_url = None
        self.proxy = None
        self.proxy_port = None
        self.workers = []

    def env(self, **extra):
        env = dict(os.environ, DATABASE_URL=self.database_url, REDIS_URL=self.redis_server.url,
                   SECRET_KEY="bench-secret", PATH=f"{BIN}:{os.environ.get('PATH', '')}",
                   # The load posts each form the moment it has it: no robot check by time.
                   MIN_FILL_SECONDS="0")
        env.update({k: str(v) for k, v in extra.items()})
        return env

    # --- the web -----------------------------------------------------------

    def ensure_web(self, design):
        """The web of this design (WEB_APPS), started unless it already runs."""
        if self.web is None or self.web_mode != design:
            self.start_web(design)

    def start_web(self, design="queue", **extra):
        self.stop_web()
        self.web_mode = design
        port = free_port()
        metrics_port = free_port()
        env = self.env(HOST="127.0.0.1", APP_PORT=port, WEB_METRICS_PORT=metrics_port, **extra)
        if self.web_concurrency:
            env["WEB_CONCURRENCY"] = str(self.web_concurrency)
        # The web's own gunicorn settings; only the app differs between designs.
        argv = [str(BIN / "gunicorn"), "--config", "web/gunicorn.conf.py"]
        if WEB_APPS[design]:
            argv.append(WEB_APPS[design])
        self.web = Service("web", argv, env, self.workdir / "web.log")
        self.web_url = f"http://127.0.0.1:{port}"
        self.web_metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        self.web.wait_healthy(self.web_url)
        return self.web_url

    def start_front(self):
        """nginx (proxy/run, the Procfile's proxy) in front of our web on its
        unix socket, as `make run` has them; returns nginx's port."""
        self.stop_proxy()
        socket_dir = self.workdir / "web"
        socket_dir.mkdir(mode=0o700, exist_ok=True)
        sockets = {"APP_SOCKET": socket_dir / "app.sock", "APP_FORM_SOCKET": socket_dir / "form.sock"}
        self.start_web("queue", **sockets)
        self.proxy_port = free_port()
        env = self.env(HOST="127.0.0.1", PORT=self.proxy_port, PROXY_RUN_DIR=self.workdir / "proxy", **sockets)
        self.proxy = Service("proxy", [str(ROOT / "proxy" / "run")], env, self.workdir / "proxy.log")
        self.proxy.wait_healthy(f"http://127.0.0.1:{self.proxy_port}")
        return self.proxy_port

    def stop_proxy(self):
        if self.proxy:
            self.proxy.stop()
            self.proxy = None

    def web_peak_rss_mb(self):
        """Sum over gunicorn's master and its workers."""
        return self.web.peak_rss_mb(with_children=True) if self.web else 0.0

    def stop_web(self):
        if self.web:
            self.web.stop()
            self.web = None

    # --- the workers -------------------------------------------------------

    def start_workers(self, n, **extra):
        for i in range(n):
            name_file = self.workdir / f"worker-{len(self.workers)}.name"
            name_file.unlink(missing_ok=True)
            env = self.env(WORKER_NAME_FILE=name_file, **extra)
            service = Service(f"worker-{i}", [sys.executable, "-m", "worker"], env,
                              self.workdir / f"worker-{len(self.workers)}.log")
            service.name_file = name_file
            self.workers.append(service)

    def wait_workers_ready(self, timeout=60):
        """Until every worker has registered with RQ (it writes its name file then)."""
        def ready():
            for w in self.workers:
                if not w.alive():
                    raise RuntimeError(f"a worker exited; see {self.workdir}/worker-*.log")
            return all(w.name_file.exists() and w.name_file.stat().st_size for w in self.workers)

        wait_until(ready, timeout, "the workers")

    def worker_peak_rss_mb(self):
        """Each worker's own process (not RQ's scheduler child)."""
        return [w.peak_rss_mb() for w in self.workers]

    def stop_workers(self):
        for w in self.workers:
            w.stop()
        self.workers = []

    # --- PostgreSQL --------------------------------------------------------

    def sql(self, statement, fetch=False):
        conn = psycopg2.connect(self.database_url, connect_timeout=5)
        try:
            with conn, conn.cursor() as cur:
                cur.execute(statement)
                return cur.fetchall() if fetch else None
        finally:
            conn.close()

    def row_count(self):
        """Rows stored so far, on one kept connection: polling must not fork a
        PostgreSQL backend each time, or the capacity model would count it."""
        for attempt in (1, 2):
            try:
                if getattr(self, "_counter", None) is None or self._counter.closed:
                    self._counter = psycopg2.connect(self.database_url, connect_timeout=5)
                    self._counter.autocommit = True
                with self._counter.cursor() as cur:
                    cur.execute("SELECT count(*) FROM cats")
                    return cur.fetchone()[0]
            except (psycopg2.OperationalError, psycopg2.InterfaceError):
                self._counter = None  # PostgreSQL restarted (the outage): connect again once
                if attempt == 2:
                    raise

    def row_stats(self):
        n, distinct, span, e2e_p50, e2e_p99 = self.sql(ROW_STATS, fetch=True)[0]
        return {"rows": n, "distinct": distinct, "span_s": float(span or 0),
                "e2e_p50_ms": float(e2e_p50 or 0), "e2e_p99_ms": float(e2e_p99 or 0)}

    def slow_database(self, slow):
        self.sql(SLOW_TRIGGER if slow else FAST_AGAIN)

    # --- Redis -------------------------------------------------------------

    def used_memory(self):
        return self.redis.info("memory")["used_memory"]

    def queued(self, queue_name="submissions"):
        return self.redis.llen(f"rq:queue:{queue_name}")

    def reset(self):
        """Empty table and Redis between rounds (with the workers stopped)."""
        self.sql("TRUNCATE answers.cats")
        self.redis.flushall()

    def destroy(self):
        if getattr(self, "_counter", None) is not None:
            self._counter.close()
        self.stop_proxy()
        self.stop_web()
        self.stop_workers()
        self.pg.destroy()
        self.redis_server.destroy()
