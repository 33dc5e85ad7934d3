"""tests/kubernetes/render.py renders what kustomize would, and refuses what it cannot."""

import json
import re
import shutil
import subprocess

import pytest
import yaml

from tests.kubernetes.render import render
from tests.kubernetes.tools import DEPLOY, KUSTOMIZATIONS, name_of
from tests.servers import ROOT


def keyed(objects):
    return {(obj["kind"], obj["metadata"]["name"]): obj for obj in objects}


def kubectl():
    """make test installs it (scripts/bootstrap: Debian's kubernetes-client)."""
    command = shutil.which("kubectl")
    assert command, "kubectl is missing: run `scripts/bootstrap test` (make test does)"
    return command


def in_kustomize_v2_words(deploy):
    """The kustomizations under deploy, rewritten for kustomize v2, which
    kubectl embedded up to 1.20 (Debian's kubernetes-client): directories go
    under `bases`, file patches under `patchesStrategicMerge`, which v2
    renders exactly as later versions render `patches` and `resources`."""
    for path in deploy.rglob("kustomization.yaml"):
        k = yaml.safe_load(path.read_text())
        dirs = [r for r in k.get("resources", []) if (path.parent / r).is_dir()]
        if dirs:
            k["bases"] = dirs
            k["resources"] = [r for r in k["resources"] if r not in dirs]
        if "patches" in k:
            k["patchesStrategicMerge"] = [patch.pop("path") for patch in k.pop("patches")]
        path.write_text(yaml.safe_dump(k))


@pytest.fixture(scope="module")
def kustomize(tmp_path_factory):
    """kubectl kustomize, given one of deploy/'s directories."""
    command = kubectl()
    version = json.loads(subprocess.run([command, "version", "--client", "-o", "json"], capture_output=True,
                                        text=True, check=True, timeout=60).stdout)["clientVersion"]
    deploy = DEPLOY
    v2 = (int(version["major"]), int(re.match(r"\d+", version["minor"])[0])) < (1, 21)
    if v2:
        root = tmp_path_factory.mktemp("repo")
        deploy = root / DEPLOY.relative_to(ROOT)
        shutil.copytree(DEPLOY, deploy)
        # The base's survey ConfigMap comes from the survey's own directory.
        shutil.copytree(ROOT / "survey", root / "survey")
        in_kustomize_v2_words(deploy)

    def run(directory):
        result = subprocess.run([command, "kustomize", str(deploy / directory.relative_to(DEPLOY))],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        objects = [obj for obj in yaml.safe_load_all(result.stdout) if obj]
        return without_name_hashes(objects) if v2 else objects
    run.v2 = v2
    return run


def without_name_hashes(objects):
    """Generated ConfigMaps' names without their hash suffix: kustomize v2
    hashes the ConfigMap's name too (5.x hashes an empty one)."""
    return json.loads(re.sub(r'"(survey)-[a-z0-9]{10}"', r'"\1-HASH"', json.dumps(objects)))


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=name_of)
def test_renders_what_kubectl_kustomize_renders(directory, kustomize):
    ours = render(directory)
    assert keyed(without_name_hashes(ours) if kustomize.v2 else ours) == keyed(kustomize(directory))


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


def test_generates_config_maps_with_kustomizes_name_hash(tmp_path):
    base = tmp_path / "base"
    base.mkdir()
    write(base, "a.toml", "a = 1\n")
    write(base, "b.svg", "<svg/>\n")
    write(base, "kustomization.yaml", "configMapGenerator: [{name: files, files: [a.toml, c.svg=b.svg]}]\n")
    write(tmp_path, "kustomization.yaml", "namespace: ns\nresources: [base, d.yaml]\n")
    write(tmp_path, "d.yaml", """
apiVersion: apps/v1
kind: Deployment
metadata: {name: d}
spec:
  template:
    spec:
      containers: [{name: a, image: app, env: [{name: X, valueFrom: {configMapKeyRef: {name: files, key: a.toml}}}]}]
      volumes: [{name: v, configMap: {name: files}}, {name: w, configMap: {name: other}}]
""")
    config_map, deployment = render(tmp_path)
    # What kubectl kustomize (5.5) names it; the hash reads the content.
    assert config_map["metadata"] == {"name": "files-5965gfmdkb", "namespace": "ns"}
    assert config_map["data"] == {"a.toml": "a = 1\n", "c.svg": "<svg/>\n"}
    spec = deployment["spec"]["template"]["spec"]
    assert [v["configMap"]["name"] for v in spec["volumes"]] == ["files-5965gfmdkb", "other"]
    assert spec["containers"][0]["env"][0]["valueFrom"]["configMapKeyRef"]["name"] == "files-5965gfmdkb"
    write(base, "a.toml", "a = 2\n")
    assert render(tmp_path)[-1]["metadata"]["name"] != "files-5965gfmdkb"


def test_generator_refuses_a_file_outside_its_directory(tmp_path):
    (tmp_path / "base").mkdir()
    write(tmp_path, "a.toml", "a = 1\n")
    write(tmp_path / "base", "kustomization.yaml", "configMapGenerator: [{name: f, files: [../a.toml]}]\n")
    with pytest.raises(ValueError, match="not in or below"):
        render(tmp_path / "base")
