"""`make run`, as the README says, starts the whole pipeline: a real HTTP POST ends as a row."""

import json
import os
import shutil
import tempfile
from pathlib import Path
import re
import signal
import socket
import subprocess
import time
import uuid

import psycopg2
import pytest
from psycopg2.extensions import make_dsn

from submission import logref
from tests.http import FIELD, Browser
from tests.scrape import samples, value
from tests.servers import ROOT, free_port, pg_bindir, statements_kept, wait_until


def listening(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def stored(database_url, submission_id):
    try:
        conn = psycopg2.connect(database_url, connect_timeout=2)
    except psycopg2.OperationalError:
        return None
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT name, coat, donut FROM cats WHERE submission_id = %s", (submission_id,))
            return cur.fetchall()
    except psycopg2.Error:
        return None
    finally:
        conn.close()


class Runner:
    def __init__(self, tmp_path, **env):
        self.port = free_port()
        self.app_port, self.web_metrics_port = free_port(), free_port()
        # Like a checkout in a shared folder: reachable by the postgres user.
        data_dir = Path(tempfile.mkdtemp(prefix="survey-run-"))
        data_dir.chmod(0o755)
        self.data_dir = data_dir
        self.log = open(tmp_path / "run.log", "wb")
        self.env = {**os.environ, "DATA_DIR": str(data_dir), "PORT": str(self.port),
                    "APP_PORT": str(self.app_port), "WEB_METRICS_PORT": str(self.web_metrics_port),
                    "DB_PORT": str(free_port()), "REDIS_PORT": str(free_port()),
                    "WORKER_METRICS_PORT": str(free_port()), "DELIVER_METRICS_PORT": str(free_port()), **env}
        for key in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "SECRET_KEY_FILE", "PROMETHEUS_MULTIPROC_DIR",
                    "DATABASE_PASSWORD_FILE", "WORKER_DATABASE_PASSWORD_FILE", "WEB_DATABASE_PASSWORD_FILE",
                    "AUDITOR_DATABASE_PASSWORD", "AUDITOR_DATABASE_PASSWORD_FILE"):
            if key not in env:
                self.env.pop(key, None)
        self.log_path = tmp_path / "run.log"
        self.proc = None

    def start(self):
        self.log_offset = len(self.log_path.read_text()) if self.log_path.exists() else 0
        # Its own process group, so the test can press "Ctrl-C" on the whole of it.
        self.proc = subprocess.Popen(["make", "run"], cwd=ROOT, env=self.env, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        # A person takes longer over the form than MIN_FILL_SECONDS (2 s unless set).
        browser = Browser(f"http://127.0.0.1:{self.port}", fill_seconds=float(self.env.get("MIN_FILL_SECONDS", "2")))

        def ready():
            # /readyz is 200 once Redis answers (the form can queue); the
            # database and the worker may still be starting, so wait for
            # PostgreSQL in its answer and for every port to listen.
            assert self.proc.poll() is None, self.log_path.read_text()[-3000:]
            try:
                status, _, body = browser.request("/readyz", timeout=2)
            except OSError:
                return False
            return (status == 200 and json.loads(body)["postgres"] == "ok"
                    and all(listening(port) for port in self.ports().values()))

        wait_until(ready, 120, "make run to answer /readyz with every process up", interval=0.3)
        return browser

    def ports(self):
        """Every port `make run` opens: proxy, gunicorn, and the servers it starts."""
        ports = {"proxy": self.port, "gunicorn": self.app_port, "worker metrics": int(self.env["WORKER_METRICS_PORT"]),
                 "delivery metrics": int(self.env["DELIVER_METRICS_PORT"])}
        ports["web metrics"] = self.web_metrics_port
        if "DATABASE_URL" not in self.env:
            ports["db"] = int(self.env["DB_PORT"])
        if "REDIS_URL" not in self.env:
            ports["redis"] = int(self.env["REDIS_PORT"])
        return ports

    def secret(self, name):
        return (self.data_dir / "secrets" / name).read_text().strip()

    def owner_url(self):
        """The owner's connection, with the password make run made on its first start."""
        return make_dsn(f"postgresql://survey@127.0.0.1:{self.env['DB_PORT']}/survey", password=self.secret("db_password"))

    def interrupt(self):
        """Ctrl-C, as a terminal sends it to the whole foreground group; waits for the runner to exit."""
        os.killpg(self.proc.pid, signal.SIGINT)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"make run did not stop within 60 s of Ctrl-C:\n{self.log_path.read_text()[-3000:]}")
        log = self.log_path.read_text()
        log = log[self.log_offset:]
        # supervisord stopped every process itself, none needed SIGKILL;
        # make, which had the Ctrl-C too, then ends itself by SIGINT.
        assert "received SIGINT indicating exit request" in log, log[-3000:]
        log = log[log.index("received SIGINT indicating exit request"):]
        assert "SIGKILL" not in log, log[-3000:]
        assert self.proc.returncode == -signal.SIGINT
        for name in ("proxy", "web", "worker", "deliver") + (("db", "redis") if "DATABASE_URL" not in self.env else ()):
            assert f"stopped: {name} (exit status 0)" in log, f"{name} did not stop cleanly:\n{log[-3000:]}"
        for what, port in self.ports().items():
            assert not listening(port), f"{what} still listens on {port} after make run stopped"
        return self.proc.returncode

    def kill(self):
        """After a failed test: supervisord starts each process in a process
        group of its own, out of reach of a signal to make's group, so each of those goes too."""
        if self.proc and self.proc.poll() is None:
            groups = {self.proc.pid}
            for pid in descendants(self.proc.pid):
                try:
                    groups.add(os.getpgid(pid))
                except ProcessLookupError:
                    pass
            for group in groups:
                try:
                    os.killpg(group, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.proc.wait(30)

    def main_pids(self):
        """name -> pid of each process's main process, found among make run's
        descendants by its command line, whatever runs them."""
        cmdlines = {}
        for pid in descendants(self.proc.pid):
            try:
                cmdlines[pid] = (Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(),
                                 int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]))
            except (OSError, IndexError, ValueError):
                pass
        found = {}
        for name, pattern in MAIN_PROCESSES.items():
            for pid, (cmdline, parent) in cmdlines.items():
                # The main one, not a child that shares its command line (gunicorn's and the worker's forks).
                if re.search(pattern, cmdline) and not re.search(pattern, cmdlines.get(parent, ("", 0))[0]):
                    found[name] = pid
        return found


# How each process's main process shows in ps: PostgreSQL's is the postmaster.
MAIN_PROCESSES = {"db": r"bin/postgres -D ", "redis": r"^redis-server ", "worker": r"python\S* -m worker(\s|$)",
                  "deliver": r"python\S* -m worker\.deliver(\s|$)",
                  "web": r"/gunicorn --config", "proxy": r"^nginx: master process"}


def descendants(pid):
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True, check=True).stdout
    children = {}
    for line in out.splitlines():
        child, parent = map(int, line.split())
        children.setdefault(parent, []).append(child)
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


@pytest.fixture
def runner(tmp_path):
    runners = []

    def make(**env):
        runners.append(Runner(tmp_path, **env))
        return runners[-1]

    yield make
    for r in runners:
        r.kill()
        shutil.rmtree(r.data_dir, ignore_errors=True)


def test_make_run_stores_a_post_and_keeps_it_across_restarts(runner):
    run = runner()
    browser = run.start()
    for what, port in run.ports().items():
        assert listening(port), f"make run's {what} does not listen on {port}"
    # A newcomer's first start shows no FATAL (no database, role or password
    # missing): they all exist before TCP opens.  The one FATAL allowed is
    # PostgreSQL telling a /readyz poll that knocked in the milliseconds
    # while it finished starting to come back ("starting up"): a state, not a fault.
    log = run.log_path.read_text()
    assert [line for line in log.splitlines()
            if "FATAL" in line and "the database system is starting up" not in line] == [], log[-3000:]
    database_url = run.owner_url()

    status, headers, _, sid = browser.submit(name="Pika", coat="tortie", donut="strawberry")
    assert status == 303, headers
    assert wait_until(lambda: stored(database_url, sid), 30, "the row") == [("Pika", "tortie", "strawberry")]
    receipt = browser.request(f"/submissions/{sid}.json")
    assert '"state":"stored"' in receipt[2]
    # The operator's views, off the public port: the web's counters (kept
    # under DATA_DIR), the worker's own.  Visitors get a 404 from nginx.
    assert browser.request("/metrics")[0] == 404
    metrics = Browser(f"http://127.0.0.1:{run.web_metrics_port}")
    assert value(samples(metrics.request("/metrics")[2]), "survey_submissions_accepted_total", enqueue="queued") == 1
    assert list((run.data_dir / "web-metrics").glob("*.db"))
    worker = Browser(f"http://127.0.0.1:{run.env['WORKER_METRICS_PORT']}")
    assert value(samples(worker.request("/metrics")[2]), "survey_worker_jobs_total", outcome="stored") == 1

    run.interrupt()
    assert stored(database_url, sid) is None

    # The data directory survives: start again, the row is still there.
    browser = run.start()
    assert stored(database_url, sid) == [("Pika", "tortie", "strawberry")]
    run.interrupt()


def test_make_run_wants_a_password_from_every_role_over_tcp(runner):
    run = runner(AUDITOR_DATABASE_PASSWORD="the auditor's own")
    run.start()
    secrets = run.data_dir / "secrets"
    for name in ("db_password", "worker_db_password", "web_db_password", "auditor_db_password", "secret_key"):
        assert (secrets / name).stat().st_mode & 0o777 == 0o600, name
    base = f"postgresql://{{}}@127.0.0.1:{run.env['DB_PORT']}/survey"
    for role, password in (("survey", run.secret("db_password")), ("survey_worker", run.secret("worker_db_password")),
                           ("survey_web", run.secret("web_db_password")), ("auditor", "the auditor's own")):
        with pytest.raises(psycopg2.OperationalError, match="password"):
            psycopg2.connect(base.format(role), connect_timeout=5).close()
        with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
            psycopg2.connect(make_dsn(base.format(role), password="wrong"), connect_timeout=5).close()
        psycopg2.connect(make_dsn(base.format(role), password=password), connect_timeout=5).close()
    # The database existed before TCP opened: the worker never met a server without it.
    assert 'database "survey" does not exist' not in run.log_path.read_text()
    run.interrupt()


def test_make_run_uses_given_servers_and_applies_the_schema(runner, pg_server, redis_server):
    database_url = pg_server.create_database(f"given_{uuid.uuid4().hex[:8]}")  # empty: no table yet
    run = runner(DATABASE_URL=database_url, REDIS_URL=redis_server.url)
    browser = run.start()
    status, _, _, sid = browser.submit(name="Tom", coat="grey", donut="maple")
    assert status == 303
    assert wait_until(lambda: stored(database_url, sid), 30, "the row") == [("Tom", "grey", "maple")]
    log = run.log_path.read_text()
    assert "spawned: 'db'" not in log and "spawned: 'redis'" not in log  # it started no servers of its own
    run.interrupt()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root's checkouts can be out of the postgres user's reach")
def test_make_run_as_root_with_a_private_data_dir(runner, tmp_path):
    # tmp_path is 0700 and root's, like a checkout under /root.
    run = runner(DATA_DIR=str(tmp_path / "data"))
    run.data_dir = tmp_path / "data"
    browser = run.start()
    database_url = run.owner_url()
    status, _, _, sid = browser.submit(name="Kit", coat="black", donut="glazed")
    assert status == 303
    assert wait_until(lambda: stored(database_url, sid), 30, "the row") == [("Kit", "black", "glazed")]
    link = tmp_path / "data" / "postgres"
    assert link.is_symlink()
    run.interrupt()
    shutil.rmtree(link.resolve())


def cluster_from_before_passwords(run):
    """The cluster an older make run made in its data directory: initdb with every local connection trusted."""
    pgdata = run.data_dir / "postgres"
    as_pg = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"] if os.geteuid() == 0 else []
    pgdata.mkdir(mode=0o700)
    if as_pg:
        shutil.chown(pgdata, "postgres", "postgres")
    subprocess.run(as_pg + [f"{pg_bindir()}/initdb", "-D", str(pgdata), "-U", "survey", "--auth=trust",
                            "-E", "UTF8", "--locale=C.UTF-8"], check=True, capture_output=True)
    return pgdata


def test_a_data_dir_from_before_passwords_gets_them(runner):
    run = runner()
    cluster_from_before_passwords(run)
    browser = run.start()
    with pytest.raises(psycopg2.OperationalError, match="password"):
        psycopg2.connect(f"postgresql://survey@127.0.0.1:{run.env['DB_PORT']}/survey", connect_timeout=5).close()
    status, _, _, sid = browser.submit(name="Old", coat="grey", donut="maple")
    assert status == 303
    assert wait_until(lambda: stored(run.owner_url(), sid), 30, "the row") == [("Old", "grey", "maple")]
    run.interrupt()


def test_the_owner_password_reaches_no_server_log(runner):
    run = runner()
    # A cluster that logs every statement and keeps every statement's text,
    # from before passwords, so scripts/run-db sets the owner's.
    pgdata = cluster_from_before_passwords(run)
    with open(pgdata / "postgresql.conf", "a") as conf:
        conf.write("log_statement = 'all'\nshared_preload_libraries = 'pg_stat_statements'\n")
    secrets = run.data_dir / "secrets"
    secrets.mkdir(mode=0o700)
    password = "owner-plain-" + uuid.uuid4().hex
    (secrets / "db_password").write_text(password + "\n")
    env = {**run.env, "DATABASE_PASSWORD_FILE": str(secrets / "db_password"),
           "PATH": f"{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}"}
    run.proc = subprocess.Popen([ROOT / "scripts" / "run-db"], cwd=ROOT, env=env, stdout=run.log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    port = int(run.env["DB_PORT"])

    owner = make_dsn(f"postgresql://survey@127.0.0.1:{port}/postgres", password=password)

    def up():
        assert run.proc.poll() is None, run.log_path.read_text()[-3000:]
        if not listening(port):
            return False
        try:
            # Listening comes a moment before accepting ("starting up").
            psycopg2.connect(owner, connect_timeout=2).close()
        except psycopg2.OperationalError as exc:
            assert "starting up" in str(exc), exc
            return False
        return True

    wait_until(up, 60, "run-db to take connections")

    # Over TCP, with the password: scram-sha-256 accepts the verifier run-db set.
    kept = statements_kept(owner)
    os.kill(run.proc.pid, signal.SIGTERM)
    assert run.proc.wait(60) == 0
    logs = (pgdata / "startup.log").read_text() + run.log_path.read_text()
    assert password not in logs
    assert not [q for q in kept if password in q]
    # The checks above looked where the statement is.
    assert "ALTER ROLE" in logs and any("ALTER ROLE" in q for q in kept), kept


def accepted(browser, within):
    """Posts the form until it is accepted (303); returns its submission id."""
    deadline = time.monotonic() + within
    while True:
        try:
            status, _, body, sid = browser.submit(name="Crash", coat="grey", donut="maple")
            if status == 303:
                return sid
        except (OSError, AssertionError) as exc:  # the form itself did not answer (refused, 502)
            status, body = None, repr(exc)
        assert time.monotonic() < deadline, f"the form accepted nothing for {within} s: {status} {body[:300]}"
        time.sleep(0.2)


def test_a_killed_process_comes_back_while_the_others_keep_serving(runner):
    # A job the killed worker held is recovered once RQ finds it abandoned, JOB_TIMEOUT + 60 s on.
    # Posts as fast as it can (MIN_FILL_SECONDS=0), to bound how long each process was away.
    run = runner(JOB_TIMEOUT="10", WORKER_DB_TIMEOUT="5", MIN_FILL_SECONDS="0")
    browser = run.start()
    owner_url = run.owner_url()
    ids = [accepted(browser, 10)]
    for name in ("db", "redis", "worker", "web", "proxy"):
        before = run.main_pids()
        assert set(before) == set(MAIN_PROCESSES), before
        for _ in range(3):  # work in hand for the worker when it is killed
            ids.append(accepted(browser, 10))
        os.kill(before[name], signal.SIGKILL)
        if name == "db":
            # The web needs only Redis to take an answer: at once, with the database gone.
            ids.append(accepted(browser, 5))
        ids.append(accepted(browser, 60))

        def back():
            assert run.proc.poll() is None, f"make run ended when {name} died:\n{run.log_path.read_text()[-3000:]}"
            now = run.main_pids()
            if now.get(name) in (None, before[name]) or not all(listening(port) for port in run.ports().values()):
                return None
            try:
                status, _, body = browser.request("/readyz", timeout=2)
            except OSError:
                return None
            return now if status == 200 and json.loads(body)["postgres"] == "ok" else None

        now = wait_until(back, 120, f"{name} to come back", interval=0.3)
        # The others kept serving: not one of them was restarted.
        assert {k: v for k, v in now.items() if k != name} == {k: v for k, v in before.items() if k != name}
        ids.append(accepted(browser, 10))

    def all_stored():
        conn = psycopg2.connect(owner_url, connect_timeout=2)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT submission_id::text, count(*) FROM cats WHERE submission_id = ANY(%s::uuid[])"
                            " GROUP BY submission_id", (ids,))
                return dict(cur.fetchall())
        finally:
            conn.close()

    counts = wait_until(lambda: len(all_stored()) == len(ids) and all_stored(), 180, "every accepted post's row", interval=1)
    assert counts == {sid: 1 for sid in ids}
    run.interrupt()


def test_no_log_of_make_run_holds_a_receipt_link(runner):
    """A receipt link reads and erases its answer: after a post, a receipt
    view and an erase, no log file holds the submission's id, and each
    process's names its reference instead (submission/logref.py)."""
    run = runner()
    browser = run.start()
    status, _, _, sid = browser.submit(name="Logan", coat="tortie", donut="strawberry")
    assert status == 303
    database_url = run.owner_url()
    wait_until(lambda: stored(database_url, sid), 30, "the row")
    page = browser.request(f"/submissions/{sid}")[2]
    assert browser.request(f"/submissions/{sid}/erase", {"csrf_token": dict(FIELD.findall(page))["csrf_token"]})[0] == 303
    wait_until(lambda: '"state":"erased"' in browser.request(f"/submissions/{sid}.json")[2], 30, "the erase")
    run.interrupt()
    logs = {path.name: path.read_text(errors="replace") for path in (run.data_dir / "logs").rglob("*") if path.is_file()}
    logs["make run"] = run.log_path.read_text()
    assert {"web.log", "worker.log", "proxy.log"} <= set(logs)
    assert [name for name, text in logs.items() if sid in text or sid.replace("-", "") in text] == []
    reference = logref.ref(sid, logref.key_bytes(run.secret("log_key")))
    assert [name for name in ("web.log", "worker.log", "proxy.log") if reference not in logs[name]] == []
    assert f"/submissions/{reference}/erase" in logs["proxy.log"]
