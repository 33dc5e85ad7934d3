"""The compose stack for real: a Docker engine of our own, the images built
from the Dockerfiles on local stand-ins for the official bases, and the four
services started with `docker compose up --wait`.

No image can be pulled on these machines and containers may only use
loopback, so (see docs/testing.md, "The Docker stack's tests"):
  * tests/docker/docker-engine runs a dockerd with no bridge network;
  * tests/docker/build-stand-ins builds python, redis and postgres stand-ins from
    Debian packages, tagged survey-standin/*, cached between runs;
  * compose.yml runs with tests/compose/compose.host.yml on top: host
    networking for every service, servers on 127.0.0.1 at free ports.
"""

import json
import os
import re
import subprocess
import time
import uuid

import pytest

from tests.compose.tools import COMPOSE_FILE, clean_env, compose_cmd, compose_config
from tests.http import Browser
from tests.servers import ROOT, free_port, wait_until


HOST_OVERRIDE = ROOT / "tests" / "compose" / "compose.host.yml"
ARTIFACTS = ROOT / "test-artifacts"
STAND_INS = {
    "PYTHON_IMAGE": "survey-standin/python:3.11-slim",
    "POSTGRES_IMAGE": "survey-standin/postgres:15",
    "REDIS_IMAGE": "survey-standin/redis:7",
    "NGINX_IMAGE": "survey-standin/nginx:1.27",
}
# Cold, the engine installs nothing (bootstrap did) but the stand-ins are
# debootstrapped and pip downloads the requirements: a few minutes.
STAND_IN_TIMEOUT = 900
BUILD_UP_TIMEOUT = 900
UP_TIMEOUT = 240
COMMAND_TIMEOUT = 60


def run(*cmd, env=None, timeout=COMMAND_TIMEOUT):
    return subprocess.run(list(cmd), cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def docker_host():
    """Our dockerd: started here unless one already runs, and then stopped here too."""
    engine = str(ROOT / "tests" / "docker" / "docker-engine")
    already_running = run(engine, "status").returncode == 0
    started = run(engine, "start", timeout=180)
    assert started.returncode == 0, started.stderr
    (host,) = re.findall(r"^export DOCKER_HOST=(\S+)$", started.stdout, re.M)
    try:
        yield host
    finally:
        # Containers still running belong to someone else's run that reused our engine.
        others = run("docker", "ps", "--quiet", env={**os.environ, "DOCKER_HOST": host}).stdout.split()
        if not already_running and not others:
            stopped = run(engine, "stop", timeout=120)
            assert stopped.returncode == 0, stopped.stderr


@pytest.fixture(scope="module")
def stand_ins(docker_host):
    env = {**os.environ, "DOCKER_HOST": docker_host}
    built = run(str(ROOT / "tests" / "docker" / "build-stand-ins"), env=env, timeout=STAND_IN_TIMEOUT)
    assert built.returncode == 0, built.stderr[-5000:]
    return STAND_INS


class Stack:
    """One compose project on loopback, its own name and ports."""

    def __init__(self, docker_host, images):
        self.project = f"survey-live-{uuid.uuid4().hex[:8]}"
        self.db_port, self.redis_port, self.web_port = free_port(), free_port(), free_port()
        self.app_port, self.web_metrics_port = free_port(), free_port()
        self.env = {
            **clean_env(),
            **images,
            "DOCKER_HOST": docker_host,
            "COMPOSE_PROJECT_NAME": self.project,
            "DB_PORT": str(self.db_port),
            "REDIS_PORT": str(self.redis_port),
            "WEB_PORT": str(self.web_port),
            "APP_PORT": str(self.app_port),
            "WEB_METRICS_PORT": str(self.web_metrics_port),
            # Compose builds with the engine's own BuildKit, not through a buildx plugin
            # that Debian's docker.io does not ship.
            "COMPOSE_BAKE": "false",
            # No stray pseudo-terminal or colours in the output the tests read.
            "COMPOSE_ANSI": "never",
            "COMPOSE_PROGRESS": "plain",
        }
        self.env.pop("DOCKER_CONTEXT", None)
        # Visitors go through the proxy, as the published port does outside the test.
        # A person takes longer over the form than MIN_FILL_SECONDS (2 s by default).
        self.browser = Browser(f"http://127.0.0.1:{self.web_port}", fill_seconds=2)

    def config(self):
        return compose_config(files=(COMPOSE_FILE, HOST_OVERRIDE), env=self.env)

    def compose(self, *args, timeout=COMMAND_TIMEOUT, check=True):
        result = compose_cmd(*args, files=(COMPOSE_FILE, HOST_OVERRIDE), env=self.env, check=False,
                             timeout=timeout)
        if check:
            assert result.returncode == 0, f"compose {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
        return result

    def up(self, *args, timeout=UP_TIMEOUT):
        # --wait: every service running and healthy, every one-shot exited 0.
        return self.compose("up", "--detach", "--wait", "--wait-timeout", str(timeout - 30), *args,
                            timeout=timeout)

    def services(self):
        out = self.compose("ps", "--all", "--format", "json").stdout
        # One JSON object per line (older Compose printed one array).
        rows = [json.loads(line) for line in out.splitlines() if line.strip()]
        return [row for chunk in rows for row in (chunk if isinstance(chunk, list) else [chunk])]

    def psql(self, sql):
        """Rows from `docker compose exec db psql`, unaligned, one tuple per line."""
        out = self.compose("exec", "-T", "db", "psql", "-U", "survey", "survey",
                           "--no-psqlrc", "-v", "ON_ERROR_STOP=1", "-At", "-c", sql).stdout
        return [line.split("|") for line in out.splitlines() if line]

    def rq_info(self):
        return self.compose("exec", "-T", "worker", "rq", "info").stdout  # RQ_REDIS_URL, as docs/operator.md has it

    def stored(self, submission_id):
        return self.psql(f"SELECT name, coat, donut FROM cats WHERE submission_id = '{submission_id}'")

    def prune_images(self):
        """Drop the image versions this run's builds replaced (untagged, built by Compose)."""
        run("docker", "image", "prune", "--force", "--filter", "label=com.docker.compose.service",
            env=self.env)

    def save_logs(self, when):
        """Append the containers' logs to test-artifacts/ (`down` deletes them with the containers)."""
        ARTIFACTS.mkdir(exist_ok=True)
        logs = self.compose("logs", "--no-color", "--timestamps", check=False, timeout=COMMAND_TIMEOUT)
        with open(ARTIFACTS / "compose-live.log", "a") as fh:
            fh.write(f"==== {self.project}, {when}\n{logs.stdout}{logs.stderr}")

    def down(self, *args, check=True):
        self.save_logs(" ".join(("before down",) + args))
        return self.compose("down", "--timeout", "30", *args, timeout=180, check=check)


@pytest.fixture(scope="module")
def stack(docker_host, stand_ins):
    stack = Stack(docker_host, stand_ins)
    (ARTIFACTS / "compose-live.log").unlink(missing_ok=True)
    # Never a bridge network (its private addresses are off limits here): every
    # service shares the host's network, so Compose creates no network at all.
    config = stack.config()
    assert not config.get("networks"), config.get("networks")
    for name, service in config["services"].items():
        assert service.get("network_mode") == "host", f"{name} is not on the host network"
    try:
        started = time.monotonic()
        stack.up("--build", timeout=BUILD_UP_TIMEOUT)
        print(f"compose up --build --wait: {time.monotonic() - started:.0f}s")
        yield stack
    finally:
        result = stack.down("--volumes", check=False)
        stack.prune_images()
    # Checked only here: a failed `up` must stay the error that is reported.
    assert result.returncode == 0, f"compose down --volumes:\n{result.stdout}\n{result.stderr}"


@pytest.fixture(scope="module")
def submission(stack):
    """One survey sent through the web's form, as a visitor would."""
    status, headers, body, submission_id = stack.browser.submit(name="Compose Tom", coat="tabby", donut="glazed")
    assert status == 303, body
    assert headers["Location"].endswith(f"/submissions/{submission_id}")
    wait_until(lambda: stack.stored(submission_id), 30, "the worker to store the submission", interval=0.5)
    return submission_id


def test_every_service_is_healthy_and_the_one_shots_succeeded(stack):
    services = {row["Service"]: row for row in stack.services()}
    assert set(services) == {"secrets", "db", "redis", "migrate", "worker", "deliver", "retention", "web", "proxy"}
    for name in ("db", "redis", "worker", "deliver", "retention", "web", "proxy"):
        assert services[name]["State"] == "running", services[name]
        assert services[name]["Health"] == "healthy", services[name]
    for name in ("secrets", "migrate"):
        assert services[name]["State"] == "exited" and services[name]["ExitCode"] == 0, services[name]


def listening_addresses(port):
    """The addresses on which something listens on `port`, from the kernel's tables
    (host networking: the containers' sockets are the machine's)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as fh:
            for line in fh.readlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                address, hex_port = local.split(":")
                if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                    found.add(address)
    return found


LOOPBACK = {"0100007F", "00000000000000000000000001000000"}  # 127.0.0.1 and ::1, as the kernel prints them


def test_every_server_listens_on_loopback_only(stack):
    for what, port in (("db", stack.db_port), ("redis", stack.redis_port), ("proxy", stack.web_port),
                       ("web", stack.app_port)):
        addresses = listening_addresses(port)
        assert addresses and addresses <= LOOPBACK, f"{what} listens on {addresses}"


def test_the_web_is_ready(stack):
    status, _, body = stack.browser.request("/readyz")
    assert status == 200, body
    assert json.loads(body) == {"status": "ok", "postgres": "ok", "redis": "ok"}


def test_the_proxy_hides_metrics_that_the_webs_own_listener_serves(stack):
    status, headers, _ = stack.browser.request("/metrics")
    assert status == 404 and headers["Server"] == "nginx"
    # Prometheus's route: the web's metrics listener.
    port = stack.web_metrics_port
    status, _, body = Browser(f"http://127.0.0.1:{port}").request("/metrics")
    assert status == 200 and "survey_queue_up 1.0" in body
    # Static files come from nginx itself.
    status, headers, _ = stack.browser.request("/static/style.css")
    assert status == 200 and headers["Server"] == "nginx"


def test_posts_from_one_address_are_rate_limited(stack):
    assert stack.config()["services"]["proxy"]["environment"]["POST_RATE_LIMIT"] == "20r/s"
    form = stack.browser.form()
    for _ in range(100):  # a burst of 40 is let through, then 20 a second
        stack.browser.request("/", {**form, "name": "Burst", "coat": "tabby", "donut": "glazed"})
    logs = stack.compose("logs", "--no-color", "proxy").stdout
    assert 'limiting requests' in logs and 'zone "posts"' in logs, logs[-3000:]


def test_the_web_reads_only_its_own_secrets(stack):
    listing = stack.compose("exec", "-T", "web", "ls", "-ln", "/run/survey-secrets").stdout
    files = {line.split()[-1]: line.split() for line in listing.splitlines() if not line.startswith("total")}
    assert set(files) == {"web_db_password", "secret_key"}, listing
    for name, fields in files.items():
        assert fields[0] == "-r--------" and fields[2] == "10001", listing
    for other in ("db_password", "worker_db_password", "auditor_db_password"):
        denied = stack.compose("exec", "-T", "web", "cat", f"/run/survey-secrets/{other}", check=False)
        assert denied.returncode != 0 and "No such file" in denied.stderr, other
    # The database's copy of the owner's password is the postgres user's alone.
    listing = stack.compose("exec", "-T", "db", "ls", "-ln", "/run/survey-secrets").stdout
    assert re.search(r"^-r-------- +1 999 +999 .* db_password$", listing, re.M), listing
    assert len([line for line in listing.splitlines() if not line.startswith("total")]) == 1, listing


def test_a_form_post_becomes_a_row(stack, submission):
    assert stack.stored(submission) == [["Compose Tom", "tabby", "glazed"]]


def test_each_service_connects_as_its_least_privileged_role(stack, submission):
    # The web's receipt and the worker's insert have both used their connections by now.
    sessions = stack.psql("SELECT DISTINCT application_name, usename FROM pg_stat_activity"
                          " WHERE application_name IN ('survey-web', 'survey-worker') ORDER BY 1")
    assert ["survey-worker", "survey_worker"] in sessions, sessions
    assert all(user != "survey" for _, user in sessions), sessions
    # The auditor reads the rows from the database's container, as docs/auditor.md says.
    out = stack.compose("exec", "-T", "db", "psql", "-U", "auditor", "survey", "--no-psqlrc", "-At",
                        "-c", "select count(*) from cats").stdout
    assert int(out.strip()) >= 1
    denied = stack.compose("exec", "-T", "db", "psql", "-U", "auditor", "survey", "--no-psqlrc",
                           "-c", "delete from cats", check=False)
    assert denied.returncode != 0 and "permission denied" in denied.stderr


def test_rq_info_shows_the_queue_and_the_worker(stack, submission):
    info = stack.rq_info()
    assert re.search(r"^submissions\s+\|", info, re.M), info
    # rq info lists the workers of the queues it lists: the delivery worker's
    # `webhooks` is one once a survey's webhook has had a delivery (none here).
    assert re.search(r"^1 workers, 1 queues$", info, re.M), info
    assert re.search(r"idle submissions\. jobs: \d+ finished", info), info


def test_the_worker_scales_to_three(stack, submission):
    stack.up("--scale", "worker=3")
    workers = [row for row in stack.services() if row["Service"] == "worker"]
    assert len(workers) == 3 and all(w["Health"] == "healthy" for w in workers), workers
    info = stack.rq_info()
    assert re.search(r"^3 workers, 1 queues$", info, re.M), info
    assert len(re.findall(r": (idle|busy) submissions\.", info)) == 3, info
    # Three workers share the queue: a new submission is still stored once.
    status, _, body, second = stack.browser.submit(name="Scaled Tom", coat="black", donut="jelly")
    assert status == 303, body
    wait_until(lambda: stack.stored(second), 30, "one of three workers to store it", interval=0.5)
    assert stack.stored(second) == [["Scaled Tom", "black", "jelly"]]


def test_rows_survive_down_and_up(stack, submission):
    before = stack.psql("SELECT submission_id, name FROM cats ORDER BY submission_id")
    assert [submission, "Compose Tom"] in before
    stack.down()
    assert not [row for row in stack.services() if row["State"] == "running"]
    stack.up()
    # The same rows from the named volume, and the web still has the password
    # made on the first start (it is ready only if PostgreSQL lets it in).
    assert stack.psql("SELECT submission_id, name FROM cats ORDER BY submission_id") == before
    assert stack.browser.request("/readyz")[0] == 200
    # Redis kept its append-only file too: the finished job is still there.
    exists = stack.compose("exec", "-T", "redis", "redis-cli", "-p", str(stack.redis_port),
                           "exists", f"rq:job:{submission}").stdout
    assert exists.strip() == "1", exists
