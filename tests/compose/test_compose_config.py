"""Static checks of compose.yml and the Dockerfiles: fast, no Docker engine needed."""

import json
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from tests.compose.tools import COMPOSE_FILE, HADOLINT, clean_env, compose_cmd, compose_config
from tests.servers import ROOT

DOCKERFILES = sorted(p for p in ROOT.glob("*/Dockerfile") if p.parent.name in ("web", "worker"))


@pytest.fixture(scope="module")
def config():
    return compose_config()


def procfile():
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict((name, shlex.split(cmd)) for name, cmd in (line.split(":", 1) for line in lines if line.strip()))


def test_compose_config_is_valid():
    result = compose_cmd("config", "-q", check=False)
    assert result.returncode == 0, result.stderr
    assert not re.search(r"^version:", COMPOSE_FILE.read_text(), re.M), "the obsolete version key"


def test_four_services_and_their_one_shots(config):
    assert {"web", "worker", "db", "redis"} <= set(config["services"])


def test_every_service_healthy_dependency_has_a_healthcheck(config):
    for name, service in config["services"].items():
        for dep, condition in service.get("depends_on", {}).items():
            if condition["condition"] == "service_healthy":
                assert config["services"][dep].get("healthcheck", {}).get("test"), f"{name} waits on {dep}"


def test_worker_and_web_wait_for_healthy_servers(config):
    worker, web = config["services"]["worker"], config["services"]["web"]
    assert worker["depends_on"]["db"]["condition"] == "service_healthy"
    assert worker["depends_on"]["redis"]["condition"] == "service_healthy"
    assert web["depends_on"]["redis"]["condition"] == "service_healthy"


def test_servers_are_not_published(config):
    for name in ("db", "redis"):
        assert not config["services"][name].get("ports"), f"{name} must not be published to the host"


def test_web_is_published_on_the_tutorial_port(config):
    (port,) = config["services"]["web"]["ports"]
    assert port["published"] == "2154"
    # Where the README opens it; WEB_BIND=0.0.0.0 is the user's choice to make.
    assert port["host_ip"] == "127.0.0.1"
    # The image's gunicorn listens there (web/Dockerfile: HOST=0.0.0.0, PORT=2154).
    assert port["target"] == 2154
    dockerfile = (ROOT / "web" / "Dockerfile").read_text()
    assert re.search(r"^\s+HOST=0\.0\.0\.0 \\$", dockerfile, re.M)
    assert re.search(r"^\s+PORT=2154$", dockerfile, re.M)
    assert "PORT" not in config["services"]["web"]["environment"]


def test_worker_can_scale(config):
    worker = config["services"]["worker"]
    assert "container_name" not in worker and not worker.get("ports")


def test_builds_exist_and_images_are_pinned(config):
    for name, service in config["services"].items():
        if "build" in service:
            build = service["build"]
            assert (Path(build["context"]) / build["dockerfile"]).is_file(), build
            base = build["args"]["PYTHON_IMAGE"]
            assert re.fullmatch(r"python:3\.11[\w.-]*", base), base
        else:
            image = service["image"]
            assert re.fullmatch(r"[\w./-]+:\d+\.\d+[\w.-]*", image), f"{name}: {image} is not pinned to major.minor"


def test_web_and_worker_run_the_runners_commands(config):
    runner = procfile()
    assert config["services"]["web"]["command"] == runner["web"]
    assert config["services"]["worker"]["command"] == runner["worker"]


def test_dockerfiles_run_the_runners_commands():
    runner = procfile()
    for dockerfile in DOCKERFILES:
        (cmd,) = re.findall(r"^CMD (\[.*\])$", dockerfile.read_text(), re.M)
        assert json.loads(cmd) == runner[dockerfile.parent.name]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_hadolint(dockerfile):
    result = subprocess.run([HADOLINT, "--failure-threshold", "info", str(dockerfile)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_live_tests_override_keeps_everything_on_loopback(config):
    """tests/compose/compose.host.yml: host networking for every service (so
    Compose makes no network), servers bound to 127.0.0.1, nothing published."""
    override = ROOT / "tests" / "compose" / "compose.host.yml"
    env = {**clean_env(), "DB_PORT": "25432", "REDIS_PORT": "26379", "WEB_PORT": "22154"}
    live = compose_config(files=(COMPOSE_FILE, override), env=env)
    assert not live.get("networks")
    assert set(live["services"]) == set(config["services"]), "every service needs its override"
    for name, service in live["services"].items():
        assert service["network_mode"] == "host", name
        assert not service.get("ports"), name
        assert sorted(service["extra_hosts"]) == ["db=127.0.0.1", "redis=127.0.0.1"], name
        if "build" in service:
            assert service["build"]["network"] == "host", name
    services = live["services"]
    base_redis = config["services"]["redis"]["command"]
    assert services["redis"]["command"] == base_redis + ["--bind", "127.0.0.1", "--port", "26379"]
    assert services["db"]["command"][-2:] == ["-c", "listen_addresses=127.0.0.1"]
    assert services["db"]["environment"]["PGPORT"] == "25432"
    assert services["web"]["environment"]["HOST"] == "127.0.0.1"
    assert services["web"]["environment"]["PORT"] == "22154"
    # Each on the test's port, and as its own role: only migrate is the owner.
    for name, variable, user in (("migrate", "DATABASE_URL", "survey"),
                                 ("worker", "WORKER_DATABASE_URL", "survey_worker"),
                                 ("web", "WEB_DATABASE_URL", "survey_web")):
        assert services[name]["environment"][variable] == f"postgresql://{user}@db:25432/survey", name
        assert services[name]["environment"]["REDIS_URL"] == "redis://redis:26379/0"
    assert "DATABASE_URL" not in services["worker"]["environment"]
    assert "DATABASE_URL" not in services["web"]["environment"]
