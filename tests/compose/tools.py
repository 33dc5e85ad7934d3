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


def compose_cmd(*args, files=(COMPOSE_FILE,), env=None, check=True, timeout=600, capture=True):
    cmd = [str(COMPOSE)]
    for f in files:
        cmd += ["-f", str(f)]
    return subprocess.run(cmd + list(args), cwd=ROOT, env=env, check=check, timeout=timeout,
                          capture_output=capture, text=True)


def compose_config(files=(COMPOSE_FILE,), env=None):
    return json.loads(compose_cmd("config", "--format", "json", files=files, env=env).stdout)
