"""What the Kubernetes tests share: the rendered manifests, and checkov in a
venv of its own."""

import os
from pathlib import Path

import yaml

from tests.kubernetes.kustomize import DEPLOY
from tests.kubernetes.kustomize import render as rendered  # noqa: F401 (the tests' name for it)
from tests.servers import ROOT

BASE = DEPLOY / "base"
# Every directory with a kustomization: the base and each overlay.
KUSTOMIZATIONS = sorted(path.parent for path in DEPLOY.rglob("kustomization.yaml"))


def name_of(directory):
    return str(Path(directory).relative_to(DEPLOY))


def pod_spec(obj):
    """The pod template's spec of a workload, or None."""
    spec = obj.get("spec", {})
    if obj["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec.get("template", {}).get("spec")


def containers(obj):
    spec = pod_spec(obj)
    if spec is None:
        return []
    return spec.get("initContainers", []) + spec.get("containers", [])


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
