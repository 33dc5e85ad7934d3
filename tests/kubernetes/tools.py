"""What the Kubernetes tests share: the rendered manifests, and checkov in a
venv of its own."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import yaml

from tests.kubernetes.render import render
from tests.servers import ROOT

DEPLOY = ROOT / "deploy" / "kubernetes"
BASE = DEPLOY / "base"
# Every directory with a kustomization: the base and each overlay.
KUSTOMIZATIONS = sorted(path.parent for path in DEPLOY.rglob("kustomization.yaml"))
CHECKOV_REQUIREMENTS = ROOT / "requirements" / "checkov.txt"


def name_of(directory):
    return str(Path(directory).relative_to(DEPLOY))


def rendered(directory):
    return render(directory)


def find(objects, kind, name):
    (obj,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return obj


def write_manifests(objects, path):
    path.write_text(yaml.safe_dump_all(objects, sort_keys=False))
    return path


def checkov():
    """The checkov command, installed on first use into .venv/checkov from
    requirements/checkov.txt (its pins cannot share the tests' venv), and
    again whenever that file changes, the way scripts/bootstrap does."""
    venv = Path(os.environ.get("CHECKOV_VENV", ROOT / ".venv" / "checkov"))
    digest = hashlib.sha256(CHECKOV_REQUIREMENTS.read_bytes()).hexdigest()[:16]
    stamp = venv / f".installed-{digest}"
    if not stamp.exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                        "--disable-pip-version-check", "-r", str(CHECKOV_REQUIREMENTS)], check=True)
        stamp.touch()
    return venv / "bin" / "checkov"
