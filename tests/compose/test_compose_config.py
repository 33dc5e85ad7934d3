"""Static checks of compose.yml and the Dockerfiles: fast, no Docker engine needed."""

import json
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from tests.compose.tools import COMPOSE_FILE, HADOLINT, clean_env, compose_cmd, compose_config
from tests.servers import ROOT

DOCKERFILES = sorted(p for p in ROOT.glob("*/Dockerfile") if p.parent.name in ("web", "worker", "proxy"))


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


def test_five_services_and_their_one_shots(config):
    assert {"proxy", "web", "worker", "db", "redis"} <= set(config["services"])


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


def test_only_the_proxy_is_published(config):
    for name, service in config["services"].items():
        if name != "proxy":
            assert not service.get("ports"), f"{name} must not be published to the host"


def test_the_proxy_is_published_on_the_tutorial_port(config):
    (port,) = config["services"]["proxy"]["ports"]
    assert port["published"] == "2154"
    # Where the quick start opens it; WEB_BIND=0.0.0.0 is the user's choice to make.
    assert port["host_ip"] == "127.0.0.1"
    # The image's nginx listens there (proxy/Dockerfile: HOST=0.0.0.0, PORT=2154).
    assert port["target"] == 2154
    dockerfile = (ROOT / "proxy" / "Dockerfile").read_text()
    assert re.search(r"^ENV HOST=0\.0\.0\.0 \\$", dockerfile, re.M)
    assert re.search(r"^\s+PORT=2154 \\$", dockerfile, re.M)
    proxy, web = config["services"]["proxy"], config["services"]["web"]
    assert "PORT" not in proxy["environment"]
    # It forwards to the web's unix socket, on a volume only the two share:
    # the one way in where the web believes who the client is.
    assert proxy["environment"]["APP_SOCKET"] == web["environment"]["APP_SOCKET"] == "/run/survey-web/app.sock"
    assert proxy["environment"]["APP_FORM_SOCKET"] == web["environment"]["APP_FORM_SOCKET"] == "/run/survey-web/form.sock"
    sharing = [name for name, service in config["services"].items()
               if any(v["source"] == "web-socket" for v in service.get("volumes", []))]
    assert sorted(sharing) == ["proxy", "web"]
    assert "FORWARDED_ALLOW_IPS" not in web["environment"]
    assert web["environment"]["APP_PORT"] == "2156"
    assert proxy["depends_on"]["web"]["condition"] == "service_healthy"
    assert web["environment"]["HOST"] == "0.0.0.0"
    assert web["environment"]["WEB_METRICS_PORT"] == "2157"
    assert proxy["environment"]["POST_RATE_LIMIT"] == "20r/s"
    assert re.fullmatch(r"nginx:1\.27[\w.-]*", proxy["build"]["args"]["NGINX_IMAGE"])


def test_each_service_mounts_only_its_own_secrets(config):
    mounts = {name: {v["source"]: v for v in service.get("volumes", []) if v["type"] == "volume" and "secrets" in v["source"]}
              for name, service in config["services"].items()}
    assert set(mounts["secrets"]) == {"db-secrets", "migrate-secrets", "worker-secrets", "web-secrets", "secrets"}
    for name in ("db", "migrate", "worker", "web"):
        (volume,) = mounts[name].values()
        assert volume["source"] == f"{name}-secrets" and volume["read_only"], name
    assert not mounts["proxy"] and not mounts["redis"]
    # The one-shot empties the old shared volume once it has carried its passwords over.
    assert not mounts["secrets"]["secrets"].get("read_only")


def test_worker_can_scale(config):
    worker = config["services"]["worker"]
    assert "container_name" not in worker and not worker.get("ports")


def test_builds_exist_and_images_are_pinned(config):
    for name, service in config["services"].items():
        if "build" in service:
            build = service["build"]
            assert (Path(build["context"]) / build["dockerfile"]).is_file(), build
            (base,) = build["args"].values()
            assert re.fullmatch(r"(python:3\.11|nginx:1\.27)[\w.-]*", base), base
        else:
            image = service["image"]
            assert re.fullmatch(r"[\w./-]+:\d+\.\d+[\w.-]*", image), f"{name}: {image} is not pinned to major.minor"


def test_proxy_web_and_worker_run_the_runners_commands(config):
    runner = procfile()
    for name in ("proxy", "web", "worker"):
        assert config["services"][name]["command"] == runner[name], name


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
    env = {**clean_env(), "DB_PORT": "25432", "REDIS_PORT": "26379", "WEB_PORT": "22154", "APP_PORT": "22156",
           "WEB_METRICS_PORT": "22157"}
    live = compose_config(files=(COMPOSE_FILE, override), env=env)
    assert not live.get("networks")
    assert set(live["services"]) == set(config["services"]), "every service needs its override"
    for name, service in live["services"].items():
        assert service["network_mode"] == "host", name
        assert not service.get("ports"), name
        assert sorted(service["extra_hosts"]) == ["db=127.0.0.1", "redis=127.0.0.1", "web=127.0.0.1"], name
        if "build" in service:
            assert service["build"]["network"] == "host", name
    services = live["services"]
    base_redis = config["services"]["redis"]["command"]
    assert services["redis"]["command"] == base_redis + ["--bind", "127.0.0.1", "--port", "26379"]
    assert base_redis == ["redis-server", "/usr/local/etc/redis/redis.conf"]
    (conf,) = [v for v in config["services"]["redis"]["volumes"] if v["target"] == base_redis[1]]
    assert conf["source"] == str(ROOT / "redis" / "redis.conf") and conf["read_only"]
    assert services["db"]["command"][-2:] == ["-c", "listen_addresses=127.0.0.1"]
    assert services["db"]["environment"]["PGPORT"] == "25432"
    assert services["web"]["environment"]["HOST"] == "127.0.0.1"
    assert services["web"]["environment"]["APP_PORT"] == "22156"
    assert services["web"]["environment"]["WEB_METRICS_PORT"] == "22157"
    assert services["proxy"]["environment"]["HOST"] == "127.0.0.1"
    assert services["proxy"]["environment"]["PORT"] == "22154"
    assert services["proxy"]["environment"]["APP_SOCKET"] == services["web"]["environment"]["APP_SOCKET"]
    # Each on the test's port, and as its own role: only migrate is the owner.
    for name, variable, user in (("migrate", "DATABASE_URL", "survey"),
                                 ("worker", "WORKER_DATABASE_URL", "survey_worker"),
                                 ("web", "WEB_DATABASE_URL", "survey_web")):
        assert services[name]["environment"][variable] == f"postgresql://{user}@db:25432/survey", name
        assert services[name]["environment"]["REDIS_URL"] == "redis://redis:26379/0"
    assert "DATABASE_URL" not in services["worker"]["environment"]
    assert "DATABASE_URL" not in services["web"]["environment"]


def test_the_webs_database_connections_fit_in_postgresql(config):
    """gunicorn would size itself to the host's cores; compose sets it, and the
    connections it implies stay well inside PostgreSQL's max_connections
    (100, the default: compose.yml does not change it)."""
    web = config["services"]["web"]["environment"]
    processes, pool = int(web["WEB_CONCURRENCY"]), int(web["WEB_DB_POOL_SIZE"])
    # Three workers (docs/docker.md's --scale example), one connection each, and
    # an auditor's export or two on connections of their own.
    needed = processes * pool + 3 + 2
    assert needed <= 100 // 2, f"{needed} connections at once"
