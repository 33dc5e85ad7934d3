"""A minimal Kustomize for deploy/kubernetes: no kustomize binary can be
installed where the tests run (PyPI has none, and Debian's kubernetes-client
is kubectl 1.20, whose kustomize v2 knows no `patches`; test_render.py
checks this renderer against it, in v2's words).

It renders only what the kustomizations there use, and refuses anything
else, so a new field fails here instead of rendering wrong:
- namespace: set on every object (all of ours are namespaced);
- resources: YAML files, or directories holding a kustomization.yaml;
- images: name -> newName and/or newTag;
- patches: files of strategic-merge patches (maps merged key by key, lists
  of named items merged by name, other lists replaced), each naming its
  target by kind and metadata.name;
- configMapGenerator: name and files (text, from the kustomization's own
  directory), named with kustomize's hash of the content; the pods' volumes
  and configMapKeyRefs that name it are renamed with it.
"""

import copy
import hashlib
import json
from pathlib import Path

import yaml

SUPPORTED = {"apiVersion", "kind", "namespace", "resources", "images", "patches", "configMapGenerator"}


def load_documents(path):
    with open(path) as fh:
        return [doc for doc in yaml.safe_load_all(fh) if doc]


def render(directory):
    """The objects `kustomize build directory` makes (in the order listed,
    generated ones after the resources)."""
    objects, _ = _render(directory)
    return objects


def _render(directory):
    """The objects, and {name: hashed name} of the ConfigMaps generated."""
    directory = Path(directory)
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(kustomization) - SUPPORTED
    if unknown:
        raise ValueError(f"{directory}: tests/kubernetes/render.py does not render {sorted(unknown)}")
    objects = []
    generated = {}
    for entry in kustomization.get("resources", []):
        path = directory / entry
        if path.is_dir():
            more, names = _render(path)
            objects += more
            generated.update(names)
        else:
            objects += load_documents(path)
    for generator in kustomization.get("configMapGenerator", []):
        config_map = _generate(directory, generator)
        generated[generator["name"]] = config_map["metadata"]["name"]
        objects.append(config_map)
    for patch in kustomization.get("patches", []):
        if set(patch) != {"path"}:
            raise ValueError(f"{directory}: only file patches are rendered, not {patch}")
        for doc in load_documents(directory / patch["path"]):
            target = _find(objects, doc["kind"], doc["metadata"]["name"], directory)
            merged = _merge(target, doc)
            target.clear()
            target.update(merged)
    for image in kustomization.get("images", []):
        _set_image(objects, image, directory)
    if "namespace" in kustomization:
        for obj in objects:
            obj["metadata"]["namespace"] = kustomization["namespace"]
    for obj in objects:
        _rename_config_maps(obj, generated)
    return objects, generated


def _generate(directory, generator):
    unknown = set(generator) - {"name", "files"}
    if unknown:
        raise ValueError(f"{directory}: configMapGenerator: {sorted(unknown)} is not rendered")
    data = {}
    for entry in generator["files"]:
        key, _, source = entry.rpartition("=")
        path = directory / source
        # kustomize's load restrictor: nothing from outside the kustomization's directory.
        if not path.resolve().is_relative_to(directory.resolve()):
            raise ValueError(f"{directory}: configMapGenerator: {source} is not in or below it")
        data[key or path.name] = path.read_bytes().decode("utf-8")  # binaryData is not rendered
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": f"{generator['name']}-{config_map_hash(data)}"}, "data": data}


def config_map_hash(data):
    """kustomize's (5.x) name suffix: the first 10 hex digits of the SHA-256 of
    Go's JSON of {kind, name, data}, with 0, 1, 3, a and e made letters, so
    the suffix is never a number.  The name it hashes is empty (it looks up
    the key "metadata/name"), and Go's JSON escapes <, > and &."""
    encoded = json.dumps({"data": data, "kind": "ConfigMap", "name": ""}, separators=(",", ":"),
                         sort_keys=True, ensure_ascii=False)
    for char in "<>&\u2028\u2029":
        encoded = encoded.replace(char, f"\\u{ord(char):04x}")
    digest = hashlib.sha256(encoded.encode()).hexdigest()[:10]
    return digest.translate(str.maketrans("013ae", "ghkmt"))


def _rename_config_maps(obj, generated):
    spec = pod_spec(obj)
    if spec is None or not generated:
        return
    for volume in spec.get("volumes", []):
        if "configMap" in volume:
            volume["configMap"]["name"] = generated.get(volume["configMap"]["name"], volume["configMap"]["name"])
    for container in containers(obj):
        for var in container.get("env", []):
            ref = var.get("valueFrom", {}).get("configMapKeyRef")
            if ref:
                ref["name"] = generated.get(ref["name"], ref["name"])


def _find(objects, kind, name, directory):
    found = [obj for obj in objects if obj["kind"] == kind and obj["metadata"]["name"] == name]
    if len(found) != 1:
        raise ValueError(f"{directory}: a patch names {kind}/{name}, found {len(found)}")
    return found[0]


def _merge(base, patch):
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = copy.deepcopy(base)
        for key, value in patch.items():
            merged[key] = _merge(base[key], value) if key in base else copy.deepcopy(value)
        return merged
    if (isinstance(base, list) and isinstance(patch, list)
            and all(isinstance(item, dict) and "name" in item for item in base + patch)):
        merged = [copy.deepcopy(item) for item in base]
        for item in patch:
            same = [i for i, old in enumerate(merged) if old["name"] == item["name"]]
            if same:
                merged[same[0]] = _merge(merged[same[0]], item)
            else:
                merged.append(copy.deepcopy(item))
        return merged
    return copy.deepcopy(patch)


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


def _set_image(objects, image, directory):
    unknown = set(image) - {"name", "newName", "newTag"}
    if unknown:
        raise ValueError(f"{directory}: images: {sorted(unknown)} is not rendered")
    used = False
    for obj in objects:
        for container in containers(obj):
            name, _, tag = container["image"].partition(":")
            if name == image["name"]:
                used = True
                name = image.get("newName", name)
                tag = image.get("newTag", tag)
                container["image"] = f"{name}:{tag}" if tag else name
    if not used:
        raise ValueError(f"{directory}: images: no container runs {image['name']}")
