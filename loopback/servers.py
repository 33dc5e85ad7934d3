"""Throwaway PostgreSQL and Redis servers, started from the machine's binaries
on free loopback ports in temporary directories, for the tests and the
benchmark.  Tests can stop and restart them to inject faults."""

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg2
import redis

ROOT = Path(__file__).resolve().parent.parent


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout, what, interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def pg_bindir():
    return subprocess.run([ROOT / "scripts" / "pg-bindir"], check=True, capture_output=True, text=True).stdout.strip()


def _as_postgres():
    """PostgreSQL refuses to run as root; drop to the postgres user if we are root."""
    if os.geteuid() == 0:
        return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"]
    return []


class PostgresServer:
    """passwords=True: TCP connections need a password (scram-sha-256) for
    every role, as under make run and compose; the superuser's is
    self.password.  The default trusts every loopback connection.
    settings: more server settings, {name: value}, passed as -c name=value."""

    user = "survey"

    def __init__(self, base_dir=None, fsync=False, passwords=False, settings=None):
        self.tmp = Path(tempfile.mkdtemp(prefix="survey-pg-", dir=base_dir))
        self.fsync = fsync
        self.settings = settings or {}
        self.password = secrets.token_hex(16) if passwords else None
        self.datadir = self.tmp / "data"
        self.port = free_port()
        self.bindir = pg_bindir()
        auth = ["--auth=trust"]
        if passwords:
            pwfile = self.tmp / "pwfile"
            pwfile.write_text(self.password + "\n")
            auth = ["--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile}"]
        if os.geteuid() == 0:
            shutil.chown(self.tmp, "postgres", "postgres")
            if passwords:
                shutil.chown(pwfile, "postgres", "postgres")
        subprocess.run(
            _as_postgres() + [f"{self.bindir}/initdb", "-D", str(self.datadir), "-U", self.user,
                              *auth, "-E", "UTF8", "--locale=C.UTF-8"],
            check=True, capture_output=True,
        )
        self.start()

    def url(self, dbname="postgres"):
        login = f"{self.user}:{self.password}" if self.password else self.user
        return f"postgresql://{login}@127.0.0.1:{self.port}/{dbname}"

    def _pg_ctl(self, *args):
        subprocess.run(_as_postgres() + [f"{self.bindir}/pg_ctl", "-D", str(self.datadir), *args],
                       check=True, capture_output=True)

    def start(self):
        # fsync off by default: a test server need not survive a power cut, and
        # tests run faster.  The benchmark keeps it on, as the runner's server does.
        opts = (f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.tmp}"
                f" -c fsync={'on' if self.fsync else 'off'} -c max_connections=200"
                + "".join(f" -c {name}={value}" for name, value in self.settings.items()))
        self._pg_ctl("start", "-w", "-t", "60", "-l", str(self.tmp / "log"), "-o", opts)

    def stop(self, mode="fast"):
        self._pg_ctl("stop", "-w", "-m", mode)

    def create_database(self, name):
        conn = psycopg2.connect(self.url())
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        conn.close()
        return self.url(name)

    def destroy(self):
        try:
            self.stop("immediate")
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.tmp, ignore_errors=True)


class RedisServer:
    """Configured as every Redis of the project is (redis/redis.conf)."""

    config = ROOT / "redis" / "redis.conf"

    def __init__(self, base_dir=None):
        self.tmp = Path(tempfile.mkdtemp(prefix="survey-redis-", dir=base_dir))
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = None
        self.start()

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", str(self.config), "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.tmp)],
            stdout=open(self.tmp / "log", "ab"), stderr=subprocess.STDOUT,
        )
        client = redis.Redis(port=self.port)

        def up():
            try:
                return client.ping()
            except redis.ConnectionError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"redis-server exited: {(self.tmp / 'log').read_text()[-2000:]}")
                return False

        wait_until(up, 30, "redis-server")

    def stop(self):
        """Shut down the way an operator would: SIGTERM, which flushes the append-only file."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)

    def destroy(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        shutil.rmtree(self.tmp, ignore_errors=True)
