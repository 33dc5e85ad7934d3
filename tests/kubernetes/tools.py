"""What the Kubernetes tests share: the rendered manifests, and checkov in a
venv of its own."""

import os
from pathlib import Path

import yaml

from tests.kubernetes.render import render
from tests.servers import ROOT

DEPLOY = ROOT / "deploy" / "kubernetes"
BASE = DEPLOY / "base"
# Every directory with a kustomization: the base and each overlay.
KUSTOMIZATIONS = sorted(path.parent for path in DEPLOY.rglob("kustomization.yaml"))


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
    """The checkov command, from the venv of its own that scripts/bootstrap
    makes (requirements/checkov.txt: its pins cannot share the tests' venv)."""
    command = Path(os.environ.get("CHECKOV_VENV", ROOT / ".venv" / "checkov")) / "bin" / "checkov"
    assert command.exists(), f"{command} is missing: run `scripts/bootstrap test` (make test does)"
    return command
