"""tests/kubernetes/render.py renders what kustomize would, and refuses what it cannot."""

import shutil
import subprocess

import pytest
import yaml

from tests.kubernetes.render import render
from tests.kubernetes.tools import KUSTOMIZATIONS, name_of


def keyed(objects):
    return {(obj["kind"], obj["metadata"]["name"]): obj for obj in objects}


@pytest.mark.skipif(not shutil.which("kubectl"), reason="kubectl is not installed (nor installable here)")
@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=name_of)
def test_renders_what_kubectl_kustomize_renders(directory):
    result = subprocess.run(["kubectl", "kustomize", str(directory)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    theirs = [obj for obj in yaml.safe_load_all(result.stdout) if obj]
    assert keyed(render(directory)) == keyed(theirs)


def write(directory, name, text):
    (directory / name).write_text(text)


def test_refuses_a_field_it_does_not_render(tmp_path):
    write(tmp_path, "kustomization.yaml", "resources: [a.yaml]\nnamePrefix: x-\n")
    write(tmp_path, "a.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n")
    with pytest.raises(ValueError, match="namePrefix"):
        render(tmp_path)


def test_patches_merge_maps_and_named_lists(tmp_path):
    base = tmp_path / "base"
    base.mkdir()
    write(base, "kustomization.yaml", "resources: [d.yaml]\nimages: [{name: app, newTag: '1.2.3'}]\n")
    write(base, "d.yaml", """
apiVersion: apps/v1
kind: Deployment
metadata: {name: d}
spec:
  template:
    spec:
      containers:
        - name: a
          image: app
          env: [{name: X, value: "1"}, {name: Y, value: "2"}]
          args: [one, two]
""")
    write(tmp_path, "kustomization.yaml", "namespace: ns\nresources: [base]\npatches: [{path: p.yaml}]\n")
    write(tmp_path, "p.yaml", """
apiVersion: apps/v1
kind: Deployment
metadata: {name: d}
spec:
  template:
    spec:
      containers:
        - name: a
          env: [{name: Y, value: "3"}, {name: Z, value: "4"}]
          args: [three]
""")
    (obj,) = render(tmp_path)
    (container,) = obj["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "app:1.2.3"
    assert container["env"] == [{"name": "X", "value": "1"}, {"name": "Y", "value": "3"}, {"name": "Z", "value": "4"}]
    assert container["args"] == ["three"]
    assert obj["metadata"]["namespace"] == "ns"
