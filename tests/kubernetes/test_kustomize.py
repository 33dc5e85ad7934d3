"""The v2 rewrite that lets Debian's kubectl 1.20 render deploy/kubernetes
(tests/kubernetes/kustomize.py); kubectl 1.21 and later render the originals."""

import shutil

import yaml

from tests.kubernetes.kustomize import DEPLOY, in_kustomize_v2_words, reached
from tests.servers import ROOT


def test_v2_words_name_directories_as_bases_and_patches_as_strategic_merges(tmp_path):
    copied = tmp_path / "kubernetes"
    shutil.copytree(DEPLOY, copied)
    in_kustomize_v2_words(copied)
    dev = yaml.safe_load((copied / "overlays" / "dev" / "kustomization.yaml").read_text())
    original = yaml.safe_load((DEPLOY / "overlays" / "dev" / "kustomization.yaml").read_text())
    assert dev["bases"] == ["../../base"]
    assert dev["resources"] == [r for r in original["resources"] if r != "../../base"]
    assert dev["patchesStrategicMerge"] == [p["path"] for p in original["patches"]]
    assert "patches" not in dev
    for path in copied.rglob("kustomization.yaml"):
        resources = yaml.safe_load(path.read_text()).get("resources", [])
        assert not any((path.parent / r).is_dir() for r in resources), path


def test_the_copy_takes_every_directory_a_kustomization_reaches():
    assert reached(DEPLOY / "overlays" / "dev") == {DEPLOY / "overlays" / "dev", DEPLOY / "base", ROOT / "survey",
                                                 ROOT / "surveys"}
