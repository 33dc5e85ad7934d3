"""Paths to Compose v2 and hadolint as installed from requirements/test.txt."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import compose

from tests.servers import ROOT

# The package's console script always exits 0; the binary beside it does not.
COMPOSE = Path(compose.__file__).parent / "docker-compose"
HADOLINT = shutil.which("hadolint", path=str(Path(os.sys.executable).parent)) or "hadolint"
COMPOSE_FILE = ROOT / "compose.yml"


# Variables compose.yml reads, and Compose's own: the static checks must see the
# file's defaults, not whatever the shell running the tests has exported.
STACK_VARIABLES = ("PYTHON_IMAGE", "POSTGRES_IMAGE", "REDIS_IMAGE", "NGINX_IMAGE", "WEB_PORT", "WEB_BIND",
                   "APP_PORT", "WEB_METRICS_PORT", "POST_RATE_LIMIT",
                   "DB_PORT", "REDIS_PORT", "COMPOSE_FILE", "COMPOSE_PROJECT_NAME", "COMPOSE_PROFILES")


def clean_env():
    return {k: v for k, v in os.environ.items() if k not in STACK_VARIABLES}


def compose_cmd(*args, files=(COMPOSE_FILE,), env=None, check=True, timeout=600, capture=True):
    if env is None:
        env = clean_env()
    cmd = [str(COMPOSE)]
    for f in files:
        cmd += ["-f", str(f)]
    return subprocess.run(cmd + list(args), cwd=ROOT, env=env, check=check, timeout=timeout,
                          capture_output=capture, text=True)


def compose_config(files=(COMPOSE_FILE,), env=None):
    return json.loads(compose_cmd("config", "--format", "json", files=files, env=env).stdout)
