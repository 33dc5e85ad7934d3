"""deploy/kubernetes rendered by `kubectl kustomize`, as a cluster's operator
renders it.

scripts/bootstrap installs Debian's kubernetes-client: kubectl 1.20, whose
kustomize v2 knows neither `patches` nor directories under `resources`.  For
a kubectl older than 1.21 the kustomizations are rewritten, in a temporary
copy of the directories one reaches (survey/ too), into v2's words (`bases`, `patchesStrategicMerge`), which v2 renders as
later versions render the originals.  The manifests keep the current words:
kustomize 5 warns that v2's are deprecated."""

import copy
import functools
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import yaml

from tests.servers import ROOT

DEPLOY = ROOT / "deploy" / "kubernetes"
TIMEOUT = 60


@functools.cache
def kubectl():
    command = shutil.which("kubectl")
    assert command, "kubectl is missing: run `scripts/bootstrap test` (make test does)"
    out = subprocess.run([command, "version", "--client", "-o", "json"], capture_output=True, text=True,
                         check=True, timeout=TIMEOUT).stdout
    version = json.loads(out)["clientVersion"]
    return command, (int(version["major"]), int(re.match(r"\d+", version["minor"])[0]))


def reached(directory):
    """directory and every kustomization directory its resources reach."""
    found = {directory}
    k = yaml.safe_load((directory / "kustomization.yaml").read_text())
    for entry in k.get("resources", []):
        path = (directory / entry).resolve()
        if path.is_dir():
            found |= reached(path)
    return found


def in_kustomize_v2_words(tree):
    """Rewrites, in place, every kustomization under tree for kustomize v2."""
    for path in tree.rglob("kustomization.yaml"):
        k = yaml.safe_load(path.read_text())
        dirs = [r for r in k.get("resources", []) if (path.parent / r).is_dir()]
        if dirs:
            k["bases"] = dirs
            k["resources"] = [r for r in k["resources"] if r not in dirs]
        if "patches" in k:
            patches = k.pop("patches")
            assert all(set(p) == {"path"} for p in patches), f"{path}: v2 takes only file patches: {patches}"
            k["patchesStrategicMerge"] = [p["path"] for p in patches]
        path.write_text(yaml.safe_dump(k))


@functools.cache
def _render(directory):
    command, version = kubectl()
    with tempfile.TemporaryDirectory(prefix="survey-kustomize-") as tmp:
        target = directory
        if version < (1, 21):
            for source in reached(directory):
                shutil.copytree(source, Path(tmp) / source.relative_to(ROOT), dirs_exist_ok=True)
            in_kustomize_v2_words(Path(tmp))
            target = Path(tmp) / directory.relative_to(ROOT)
        result = subprocess.run([command, "kustomize", str(target)], capture_output=True, text=True,
                                timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr
    return [obj for obj in yaml.safe_load_all(result.stdout) if obj]


def render(directory):
    """The objects `kubectl kustomize directory` makes (a directory in this
    checkout).  A copy: the tests may change what they are given."""
    return copy.deepcopy(_render(Path(directory).resolve()))
