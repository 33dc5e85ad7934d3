"""deploy/kubernetes, rendered (base and every overlay) and checked against
the Kubernetes schemas, checkov, the Procfile, compose.yml, the settings the
code reads and the app's own URL map. Offline; no cluster."""

import copy
import json
import re
import shlex
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
import rq
import yaml

from tests.kubernetes.network import Endpoint, allowed, policy_types, selects
from tests.kubernetes.tools import containers, pod_spec
from tests.kubernetes.tools import (BASE, KUSTOMIZATIONS, checkov, find, name_of, rendered,
                                    write_manifests)
from tests.servers import ROOT

KUBERNETES_VALIDATE = Path(sys.executable).parent / "kubernetes-validate"
# The oldest and newest Kubernetes that the manifests support: every API they
# use (autoscaling/v2, policy/v1, networking.k8s.io/v1, seccompProfile,
# topologySpreadConstraints) is GA in both, and these are the ends of what
# kubernetes-validate bundles.
KUBERNETES_VERSIONS = ("1.25", "1.37")
# Custom resources the schemas do not know; test_keda_scaled_object checks them.
CUSTOM_KINDS = {("keda.sh/v1alpha1", "ScaledObject")}

# Each checkov finding we accept, and why. test_checkov fails on any other
# finding, and on any reason here that no longer matches a finding.
CHECKOV_SKIPS = {
    "CKV_K8S_43": "Image should use digest: images are pinned to the project's version tag; a "
                  "deploy pipeline that builds them pins digests with `kustomize edit set image "
                  "name@sha256:...`, which cannot be known in the repository.",
    "CKV_K8S_15": "Image Pull Policy should be Always: a version tag is never reused, so "
                  "IfNotPresent pulls the same image, and a pod can still start (scale out under "
                  "load, reschedule in a drain) while the registry is unreachable.",
}


def procfile():
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict((name, shlex.split(cmd)) for name, cmd in (line.split(":", 1) for line in lines if line.strip()))


def compose_file():
    """compose.yml with each ${VAR:-default} at its default."""
    text = re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", (ROOT / "compose.yml").read_text())
    return yaml.safe_load(text)


@pytest.fixture(scope="module", params=KUSTOMIZATIONS, ids=name_of)
def objects(request):
    return rendered(request.param)


@pytest.fixture(scope="module")
def base():
    return rendered(BASE)


def workloads(objects):
    return [obj for obj in objects if pod_spec(obj) is not None]


def app_container(objects, kind, name):
    (container,) = containers(find(objects, kind, name))
    return container


def env_of(objects, container):
    """The container's environment as the pod sees it: literal values and
    ConfigMap keys resolved (secret files are paths, resolved by the test)."""
    env = {}
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
        else:
            ref = var["valueFrom"]["configMapKeyRef"]
            env[var["name"]] = find(objects, "ConfigMap", ref["name"])["data"][ref["key"]]
    assert "envFrom" not in container, "every variable by name, so each is checked"
    return env


# -- the schemas ------------------------------------------------------------

@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_manifest_passes_kubernetes_validate_strict(objects, version, tmp_path):
    path = write_manifests(objects, tmp_path / "rendered.yaml")
    result = subprocess.run([KUBERNETES_VALIDATE, "--strict", "--kubernetes-version", version, str(path)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    passed = re.findall(r"^INFO .* passed for resource (\S+) against version", result.stdout, re.M)
    # A kind it has no schema for is only a warning there: each must be ours to check.
    unchecked = {(obj["apiVersion"], obj["kind"]) for obj in objects} - {
        (obj["apiVersion"], obj["kind"]) for obj in objects
        if f"{obj['kind'].lower()}/{obj['metadata']['name']}" in passed}
    assert unchecked <= CUSTOM_KINDS, unchecked
    assert len(passed) == len([o for o in objects if (o["apiVersion"], o["kind"]) not in CUSTOM_KINDS])


def test_kubernetes_validate_strict_rejects_an_unknown_field(base, tmp_path):
    """The check above can fail: a misspelt field is an error, not ignored."""
    web = copy.deepcopy(find(base, "Deployment", "survey-web"))
    web["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGett"] = {"path": "/readyz"}
    path = write_manifests([web], tmp_path / "bad.yaml")
    result = subprocess.run([KUBERNETES_VALIDATE, "--strict", "-k", KUBERNETES_VERSIONS[0], str(path)],
                            capture_output=True, text=True)
    assert result.returncode != 0 and "httpGett" in result.stdout, result.stdout


def test_no_secret_is_committed(objects):
    assert not [obj for obj in objects if obj["kind"] == "Secret"]


def test_every_object_has_a_namespace(objects):
    # Not "default", and the secrets docs/kubernetes.md creates go to the same one.
    assert {obj["metadata"].get("namespace") for obj in objects} == {"cat-survey"}


# -- checkov ----------------------------------------------------------------

@pytest.fixture(scope="module")
def checkov_findings(tmp_path_factory):
    """One checkov run over the base and every overlay: {file: [(check, resource)]}."""
    directory = tmp_path_factory.mktemp("checkov")
    for kustomization in KUSTOMIZATIONS:
        write_manifests(rendered(kustomization), directory / (name_of(kustomization).replace("/", "-") + ".yaml"))
    result = subprocess.run([checkov(), "--framework", "kubernetes", "--directory", str(directory),
                             "--skip-download", "--quiet", "--compact", "--output", "json"],
                            capture_output=True, text=True, timeout=300)
    report = json.loads(result.stdout)
    assert report["summary"]["parsing_errors"] == 0, report["summary"]
    assert report["summary"]["resource_count"] > 0
    findings = {}
    for check in report["results"]["failed_checks"]:
        findings.setdefault(Path(check["file_path"]).name, []).append((check["check_id"], check["resource"]))
    return findings


def test_checkov_finds_nothing_but_the_skips_we_explain(checkov_findings):
    unexplained = sorted({finding for found in checkov_findings.values() for finding in found
                          if finding[0] not in CHECKOV_SKIPS})
    assert not unexplained
    # A reason for a finding that is gone would hide the next one.
    found = {check for found in checkov_findings.values() for check, _ in found}
    assert found == set(CHECKOV_SKIPS)


# -- the same commands and images as the runner and compose ------------------

def test_containers_run_the_procfiles_commands(objects):
    runner = procfile()
    assert app_container(objects, "Deployment", "survey-web")["command"] == runner["web"]
    assert app_container(objects, "Deployment", "survey-worker")["command"] == runner["worker"]
    assert app_container(objects, "Deployment", "survey-retention")["command"] == runner["retention"]
    assert app_container(objects, "Deployment", "survey-deliver")["command"] == runner["deliver"]
    assert app_container(objects, "Job", "survey-migrate")["command"] == compose_file()["services"]["migrate"]["command"]


def test_images_are_compose_files_and_pinned(objects):
    services = compose_file()["services"]
    app_tags = set()
    for obj in workloads(objects):
        for container in containers(obj):
            name, _, tag = container["image"].rpartition(":")
            assert tag and tag != "latest" and "/" not in tag, container["image"]
            if name.startswith("cat-survey-"):
                app_tags.add(tag)
            else:
                # PostgreSQL and Redis of overlays/dev: compose.yml's images.
                assert container["image"] in {services["db"]["image"], services["redis"]["image"]}
    (tag,) = app_tags  # the web and the worker of one version
    assert re.fullmatch(r"\d+\.\d+\.\d+", tag), tag
    # The version compose.yml tags its builds with.
    for service in ("web", "worker", "migrate", "proxy"):
        _, _, compose_tag = services[service]["image"].partition(":")
        assert compose_tag == tag, f"compose.yml builds {services[service]['image']}"
    assert find(objects, "Job", "survey-migrate")["spec"]["template"]["spec"]["containers"][0]["image"] == \
        app_container(objects, "Deployment", "survey-worker")["image"], "migrate runs from the worker's image"


def test_app_pods_run_as_the_images_user_on_a_read_only_root(objects):
    for obj in workloads(objects):
        spec = pod_spec(obj)
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["automountServiceAccountToken"] is False
        for container in containers(obj):
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert container["resources"]["requests"] and container["resources"]["limits"]
    for dockerfile, workload in (("web", ("Deployment", "survey-web")), ("worker", ("Deployment", "survey-worker")),
                                 ("worker", ("Job", "survey-migrate"))):
        (user,) = re.findall(r"^USER (\d+):(\d+)$", (ROOT / dockerfile / "Dockerfile").read_text(), re.M)
        context = pod_spec(find(objects, *workload))["securityContext"]
        assert (str(context["runAsUser"]), str(context["runAsGroup"])) == user


def test_where_the_apps_write_is_an_empty_dir(objects):
    for kind, name, paths in (("Deployment", "survey-web", ["/tmp", "PROMETHEUS_MULTIPROC_DIR"]),
                              ("Deployment", "survey-worker", ["/tmp", "WORKER_NAME_FILE"]),
                              ("Job", "survey-migrate", ["/tmp"])):
        obj = find(objects, kind, name)
        (container,) = containers(obj)
        env = env_of(objects, container)
        empty_dirs = {v["name"] for v in pod_spec(obj)["volumes"] if "emptyDir" in v}
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        for path in paths:
            path = env.get(path, path)
            if path == env.get("WORKER_NAME_FILE"):
                path = str(Path(path).parent)
            assert mounts.get(path) in empty_dirs, f"{name}: {path}"


# -- settings: each one set is read, each one needed is set --------------------

class RecordingEnv(dict):
    """An environment that remembers every name the config code asks for."""

    def __init__(self, *args):
        super().__init__(*args)
        self.read = set()

    def get(self, key, default=None):
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)

    def __contains__(self, key):
        self.read.add(key)
        return super().__contains__(key)


def documented_secrets():
    """{secret: {key}} from docs/kubernetes.md's `kubectl create secret generic` commands."""
    page = (ROOT / "docs" / "kubernetes.md").read_text()
    secrets = {}
    for command in re.findall(r"kubectl (?:-n \S+ )?create secret generic (?:[^\n]*\\\n)*[^\n]*", page):
        words = shlex.split(command.replace("\\\n", " "))
        name = words[words.index("generic") + 1]
        keys = {}
        for word in words:
            if word.startswith("--from-file="):
                key, source = word[len("--from-file="):].split("=", 1)
                keys[key] = source
        # Each key from the file of the same name, one that compose's secrets service makes.
        made = set(re.findall(r"\b(\w+_password|secret_key)\b", (ROOT / "db" / "make-secrets.sh").read_text()))
        for key, source in keys.items():
            assert Path(source).name == key and key in made, f"{name}: {key}={source}"
        secrets[name] = set(keys)
    return secrets


def resolve_secret_files(obj, container, env, tmp_path):
    """Each *_FILE points into a mounted Secret's key that docs/kubernetes.md creates;
    the test puts a stand-in file there."""
    volumes = {v["name"]: v for v in pod_spec(obj)["volumes"]}
    created = documented_secrets()
    for name, path in list(env.items()):
        if not name.endswith("_FILE") or name in ("WORKER_NAME_FILE", "SURVEY_FILE"):
            continue
        (mount,) = [m for m in container["volumeMounts"] if path.startswith(m["mountPath"] + "/")]
        secret = volumes[mount["name"]]["secret"]["secretName"]
        key = path[len(mount["mountPath"]) + 1:]
        assert key in created.get(secret, ()), f"{name}: docs/kubernetes.md makes no key {key} in Secret {secret}"
        stand_in = tmp_path / f"{secret}-{key}"
        stand_in.write_text(f"from-{key}\n")
        env[name] = str(stand_in)
    return env


def survey_mount(objects, obj, container):
    """Where SURVEY_FILE points in the pod: (the mount, its ConfigMap, the key)."""
    path = env_of(objects, container)["SURVEY_FILE"]
    (mount,) = [m for m in container["volumeMounts"] if path.startswith(m["mountPath"] + "/")]
    volume = {v["name"]: v for v in pod_spec(obj)["volumes"]}[mount["name"]]
    # The whole ConfigMap, as a directory: the pictures sit next to the file.
    assert "subPath" not in mount and "items" not in volume["configMap"], mount
    return mount, find(objects, "ConfigMap", volume["configMap"]["name"]), path[len(mount["mountPath"]) + 1:]


def unpack_surveys(objects, obj, container, tmp_path):
    """SURVEYS_DIR's ConfigMap written out as the kubelet mounts it: the folder."""
    path = env_of(objects, container)["SURVEYS_DIR"]
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == path]
    volume = {v["name"]: v for v in pod_spec(obj)["volumes"]}[mount["name"]]
    config_map = find(objects, "ConfigMap", volume["configMap"]["name"])
    directory = tmp_path / config_map["metadata"]["name"]
    directory.mkdir(exist_ok=True)
    for name, text in (config_map.get("data") or {}).items():
        (directory / name).write_text(text)
    return directory


def unpack_survey(objects, obj, container, tmp_path):
    """The survey's ConfigMap written out as the kubelet mounts it; the path
    SURVEY_FILE names there."""
    _, config_map, key = survey_mount(objects, obj, container)
    directory = tmp_path / config_map["metadata"]["name"]
    directory.mkdir(exist_ok=True)
    for name, text in config_map["data"].items():
        (directory / name).write_text(text)
    return directory / key


# Names the web reads in gunicorn.conf.py today, and in web/config.py once the
# web branch (issue 11: web.config.server()) is merged; then this goes away.
def _web_config_readers():
    from web import config as web_config
    readers = [web_config.from_env]
    if hasattr(web_config, "server"):
        readers.append(web_config.server)
        return readers, set()
    return readers, {"HOST", "APP_PORT", "WEB_METRICS_PORT", "WEB_CONCURRENCY", "PROMETHEUS_MULTIPROC_DIR",
                     "LOG_LEVEL", "LOG_FORMAT", "QUEUE_MAX_DEPTH", "RESULTS_PUBLIC"}


def rq_cli_variables():
    """The variables RQ's command line reads (rq info in the worker's pod)."""
    source = Path(rq.__file__).parent.joinpath("cli", "helpers.py").read_text()
    return set(re.findall(r"envvar='(\w+)'", source))


def test_every_variable_set_is_read_and_every_needed_one_is_set(objects, tmp_path):
    from worker.config import Config as WorkerConfig

    web_readers, not_yet_in_web_config = _web_config_readers()
    services = {
        ("Deployment", "survey-web"): web_readers,
        ("Deployment", "survey-worker"): [WorkerConfig.from_env],
        ("Job", "survey-migrate"): [WorkerConfig.from_env],
    }
    for (kind, name), readers in services.items():
        obj = find(objects, kind, name)
        (container,) = containers(obj)
        env = resolve_secret_files(obj, container, env_of(objects, container), tmp_path)
        if "SURVEY_FILE" in env:
            env["SURVEY_FILE"] = str(unpack_survey(objects, obj, container, tmp_path))
        if "SURVEYS_DIR" in env:
            env["SURVEYS_DIR"] = str(unpack_surveys(objects, obj, container, tmp_path))
        env = RecordingEnv(env)
        settings = {}
        for read in readers:
            result = read(env)
            settings.update(result if isinstance(result, dict) else vars(result))
        if name == "survey-migrate":
            # It sets the three roles' passwords.
            assert set(settings["role_passwords"]) == {"survey_worker", "survey_web", "auditor"}
        unread = set(env) - env.read - not_yet_in_web_config
        if name == "survey-worker":
            unread -= rq_cli_variables()
        assert not unread, f"{name} sets what nothing reads: {sorted(unread)}"
        # The defaults that only make sense on one machine (127.0.0.1 for the
        # servers and listeners, a random SECRET_KEY) must all be overridden.
        if name == "survey-migrate":  # it connects as the owner, and that is all it does
            settings = {"migrate_url": settings["migrate_url"]}
        text = json.dumps(settings, default=str)
        assert "127.0.0.1" not in text, f"{name}: {text}"
        if name == "survey-web":
            assert settings["SECRET_KEY"] == "from-secret_key"
            assert "password=from-web_db_password" in settings["DATABASE_URL"]
        if name == "survey-worker":
            assert "password=from-worker_db_password" in settings["database_url"]
            assert settings["migrate_on_start"] is False
            assert settings["metrics_port"] == 2155
        if name == "survey-migrate":
            assert "password=from-db_password" in settings["migrate_url"]


def test_web_and_worker_read_the_survey_from_its_config_map(objects, tmp_path):
    import survey

    default = survey.DEFAULT_FILE
    config_maps = set()
    for name in ("survey-web", "survey-worker"):
        obj = find(objects, "Deployment", name)
        (container,) = containers(obj)
        mount, config_map, key = survey_mount(objects, obj, container)
        assert mount["readOnly"] is True
        config_maps.add(config_map["metadata"]["name"])
        # The repository's survey, byte for byte, generated from survey/.
        assert config_map["data"][key].encode() == default.read_bytes()
        path = unpack_survey(objects, obj, container, tmp_path)
        check = subprocess.run([sys.executable, "-m", "survey", "check", str(path)], cwd=ROOT,
                               capture_output=True, text=True, timeout=60)
        assert check.returncode == 0 and ": ok: " in check.stdout, check.stderr
        # The file and exactly the pictures it names, each as survey/ has it.
        pictures = {c.picture.name for q in ("coat", "donut") for c in getattr(survey.load(path), q).choices
                    if c.picture}
        assert set(config_map["data"]) == {key} | pictures
        for picture in pictures:
            assert config_map["data"][picture].encode() == (default.parent / picture).read_bytes()
    (config_map,) = config_maps
    assert config_map.startswith("survey-"), "kustomize's hash of the content: a changed survey rolls the pods"


def test_each_pod_gets_only_its_own_secret(base):
    secrets = {name: pod_spec(find(base, kind, name))["volumes"]
               for kind, name in (("Deployment", "survey-web"), ("Deployment", "survey-worker"),
                                  ("Job", "survey-migrate"), ("Deployment", "survey-deliver"))}
    names = {name: [v["secret"]["secretName"] for v in volumes if "secret" in v] for name, volumes in secrets.items()}
    # survey-webhooks, the webhooks' secrets, goes to every pod that reads the survey files: each checks them at start.
    assert names == {"survey-web": ["survey-web", "survey-webhooks"], "survey-worker": ["survey-worker", "survey-webhooks"],
                     "survey-migrate": ["survey-migrate", "survey-webhooks"],
                     "survey-deliver": ["survey-worker", "survey-webhooks"]}
    created = documented_secrets()
    assert created["survey-web"] == {"web_db_password", "secret_key"}
    assert created["survey-worker"] == {"worker_db_password"}
    assert created["survey-migrate"] == {"db_password", "worker_db_password", "web_db_password",
                                         "auditor_db_password"}


# -- probes, ports and what is routed ----------------------------------------

@pytest.fixture(scope="module")
def url_map():
    from web import create_app
    return create_app().url_map


def port_number(container, port):
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in container["ports"] if p["name"] == port]
    return number


def test_web_probes_ask_the_apps_endpoints_on_the_app_port(objects, url_map):
    web = app_container(objects, "Deployment", "survey-web")
    env = env_of(objects, web)
    routes = {rule.rule for rule in url_map.iter_rules() if "GET" in rule.methods}
    # Ready means "can take a submission" (Redis); alive means the process answers.
    assert web["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert web["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for probe in ("readinessProbe", "livenessProbe"):
        get = web[probe]["httpGet"]
        assert get["path"] in routes
        assert port_number(web, get["port"]) == int(env["APP_PORT"])


def test_worker_liveness_is_its_healthcheck(objects):
    worker = app_container(objects, "Deployment", "survey-worker")
    assert worker["livenessProbe"]["exec"]["command"] == ["python", "-m", "worker.healthcheck"]
    assert (ROOT / "worker" / "healthcheck.py").is_file()


def sample_path(rule):
    """A concrete path the rule matches."""
    samples = {"uuid": str(uuid.uuid4()), "path": "style.css"}
    return re.sub(r"<(?:(\w+)(?:\([^)]*\))?:)?\w+>", lambda m: samples.get(m.group(1) or "default", "x"), rule)


def routed(ingress, path):
    for rule in ingress["spec"]["rules"]:
        for entry in rule["http"]["paths"]:
            prefix = entry["path"]
            if entry["pathType"] == "Exact" and path == prefix:
                return entry
            if entry["pathType"] == "Prefix" and (prefix == "/" or path == prefix
                                                  or path.startswith(prefix.rstrip("/") + "/")):
                return entry
    return None


OPERATOR_ENDPOINTS = {"/metrics", "/healthz", "/readyz"}


def test_ingress_routes_the_visitors_pages_and_no_operator_endpoint(objects, url_map):
    ingress = find(objects, "Ingress", "survey-web")
    for rule in url_map.iter_rules():
        path = sample_path(rule.rule)
        if rule.rule in OPERATOR_ENDPOINTS:
            assert routed(ingress, path) is None, rule.rule
        else:
            assert routed(ingress, path) is not None, f"{rule.rule} is not routed"


def test_the_public_path_never_reaches_the_metrics_port(objects):
    web = app_container(objects, "Deployment", "survey-web")
    env = env_of(objects, web)
    service = find(objects, "Service", "survey-web")
    targets = {port_number(web, p["targetPort"]) for p in service["spec"]["ports"]}
    assert targets == {int(env["APP_PORT"])}
    ingress = find(objects, "Ingress", "survey-web")
    backends = {(p["backend"]["service"]["name"], p["backend"]["service"]["port"]["name"])
                for r in ingress["spec"]["rules"] for p in r["http"]["paths"]}
    assert backends == {("survey-web", "http")}
    # Prometheus scrapes each pod on its metrics listener.
    template = find(objects, "Deployment", "survey-web")["spec"]["template"]
    assert template["metadata"]["annotations"]["prometheus.io/port"] == env["WEB_METRICS_PORT"]
    assert port_number(web, "metrics") == int(env["WEB_METRICS_PORT"]) != int(env["APP_PORT"])
    worker = app_container(objects, "Deployment", "survey-worker")
    template = find(objects, "Deployment", "survey-worker")["spec"]["template"]
    assert template["metadata"]["annotations"]["prometheus.io/port"] == env_of(objects, worker)["WORKER_METRICS_PORT"]


def test_ingress_limits_match_the_web(objects):
    annotations = find(objects, "Ingress", "survey-web")["metadata"]["annotations"]
    # POST_RATE_LIMIT's default, 20r/s (the contract's nginx syntax).
    assert annotations["nginx.ingress.kubernetes.io/limit-rps"] == "20"
    body = annotations["nginx.ingress.kubernetes.io/proxy-body-size"]
    from web import config as web_config
    max_content = web_config.from_env({})["MAX_CONTENT_LENGTH"]
    assert int(body.rstrip("k")) * 1024 == max_content


# -- sizes and budgets ---------------------------------------------------------

def cpu_cores(quantity):
    return int(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


# PostgreSQL's defaults: max_connections 100, 3 of them kept for superusers.
POSTGRES_CONNECTIONS = 100 - 3
# A gunicorn worker serves one request at a time, holding at most its own
# connection and, during an export, the auditor's. A worker holds one.
CONNECTIONS_PER_WEB_PROCESS = 2
CONNECTIONS_PER_WORKER = 1


def test_web_concurrency_fits_the_cpu_limit_and_postgres(objects):
    web = app_container(objects, "Deployment", "survey-web")
    concurrency = int(env_of(objects, web)["WEB_CONCURRENCY"])
    # gunicorn's 2 x cores + 1, from the container's limit, not the node's cores.
    assert concurrency == 2 * int(cpu_cores(web["resources"]["limits"]["cpu"])) + 1
    web_max = find(objects, "HorizontalPodAutoscaler", "survey-web")["spec"]["maxReplicas"]
    workers_max = find(objects, "ScaledObject", "survey-worker")["spec"]["maxReplicaCount"]
    migrate = 1
    needed = (web_max * concurrency * CONNECTIONS_PER_WEB_PROCESS + workers_max * CONNECTIONS_PER_WORKER + migrate)
    assert needed <= POSTGRES_CONNECTIONS, needed


def test_worker_has_time_for_a_warm_shutdown(objects):
    from web import config as web_config
    job_timeout = web_config.from_env({})["JOB_TIMEOUT"]
    grace = pod_spec(find(objects, "Deployment", "survey-worker"))["terminationGracePeriodSeconds"]
    # The job in hand may run JOB_TIMEOUT; compose.yml gives the same grace.
    assert grace >= 2 * job_timeout
    assert compose_file()["services"]["worker"]["stop_grace_period"] == f"{grace}s"


def test_web_scales_on_cpu_from_two_replicas(objects):
    hpa = find(objects, "HorizontalPodAutoscaler", "survey-web")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "survey-web"}
    assert hpa["spec"]["minReplicas"] >= 2
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    # The autoscalers own the replica counts: an apply must not reset them.
    for name in ("survey-web", "survey-worker"):
        assert "replicas" not in find(objects, "Deployment", name)["spec"]


def test_disruption_budgets_cover_web_and_worker(objects):
    for name in ("survey-web", "survey-worker"):
        budget = find(objects, "PodDisruptionBudget", name)
        labels = find(objects, "Deployment", name)["spec"]["template"]["metadata"]["labels"]
        assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert find(objects, "PodDisruptionBudget", "survey-web")["spec"]["minAvailable"] == 1
    # A single worker must still be drainable.
    assert find(objects, "PodDisruptionBudget", "survey-worker")["spec"]["maxUnavailable"] == 1


# -- network policies ----------------------------------------------------------

# Who else is in the cluster, where network-policies.yaml's header says.
OUTSIDERS = (
    Endpoint("ingress", "ingress-nginx",
             {"app.kubernetes.io/name": "ingress-nginx", "app.kubernetes.io/component": "controller"}),
    # The chart's admission webhook: same namespace, not the controller.
    Endpoint("ingress-admission", "ingress-nginx",
             {"app.kubernetes.io/name": "ingress-nginx", "app.kubernetes.io/component": "admission-webhook"}),
    Endpoint("prometheus", "monitoring", {"app.kubernetes.io/name": "prometheus"}),
    Endpoint("grafana", "monitoring", {"app.kubernetes.io/name": "grafana"}),
    Endpoint("dns", "kube-system", {"k8s-app": "kube-dns"}, (("dns", (53, "UDP")), ("dns-tcp", (53, "TCP")))),
    Endpoint("keda", "keda", {"app.kubernetes.io/name": "keda-operator"}),
    Endpoint("elsewhere", "default", {"app.kubernetes.io/name": "ingress-nginx"}, (("http", (80, "TCP")),)),
    Endpoint("internet", None, ip="203.0.113.7"),
)
# Ports tried on every destination besides its own.
OTHER_PORTS = ((22, "TCP"), (53, "UDP"), (53, "TCP"), (443, "TCP"))


def pods_of(objects):
    """Our pods, each as its workload's template makes it; PostgreSQL and
    Redis as the policies expect them where the manifests bring none (the base)."""
    namespace = objects[0]["metadata"]["namespace"]
    pods = {}
    for obj in workloads(objects):
        ports = tuple((p.get("name"), (p["containerPort"], p.get("protocol", "TCP")))
                      for c in containers(obj) for p in c.get("ports", []))
        labels = obj["spec"]["template"]["metadata"]["labels"]
        pods[labels["app.kubernetes.io/component"]] = Endpoint(labels["app.kubernetes.io/component"], namespace,
                                                               labels, ports)
    config = find(objects, "ConfigMap", "survey-config")["data"]
    for name, url in (("db", config["DATABASE_URL"]), ("redis", config["REDIS_URL"])):
        pods.setdefault(name, Endpoint(name, namespace, {"app.kubernetes.io/name": "cat-survey",
                                                         "app.kubernetes.io/component": name},
                                       ((name, (urlsplit(url).port, "TCP")),)))
    pods["stranger"] = Endpoint("stranger", namespace, {"app.kubernetes.io/name": "something-else"},
                                (("http", (8080, "TCP")),))
    return pods


def allowed_flows(objects):
    """Every (source, destination, port, protocol) the policies let through,
    between our pods and from or to anything else."""
    policies = [obj for obj in objects if obj["kind"] == "NetworkPolicy"]
    ours = pods_of(objects)
    everyone = list(ours.values()) + list(OUTSIDERS)
    flows = set()
    for source in everyone:
        for destination in everyone:
            if source is destination or (source.name not in ours and destination.name not in ours):
                continue
            for port, protocol in {number for _, number in destination.ports} | set(OTHER_PORTS):
                if allowed(policies, source, destination, port, protocol):
                    flows.add((source.name, destination.name, port, protocol))
    return flows


def test_network_policies_deny_by_default_both_ways(objects):
    policies = [obj for obj in objects if obj["kind"] == "NetworkPolicy"]
    deny = [p for p in policies if p["spec"]["podSelector"] == {}]
    assert [(policy_types(p), p["spec"].get("ingress"), p["spec"].get("egress")) for p in deny] == \
        [({"Ingress", "Egress"}, None, None)]
    # It selects every pod of the namespace: ours and any other.
    for pod in pods_of(objects).values():
        assert selects(deny[0]["spec"]["podSelector"], pod.labels)


def test_network_policies_allow_exactly_the_needed_flows(objects):
    web = env_of(objects, app_container(objects, "Deployment", "survey-web"))
    worker = env_of(objects, app_container(objects, "Deployment", "survey-worker"))
    config = find(objects, "ConfigMap", "survey-config")["data"]
    postgres, redis_port = urlsplit(config["DATABASE_URL"]).port, urlsplit(config["REDIS_URL"]).port
    expected = set()
    for app in ("web", "worker", "migrate", "deliver"):
        expected |= {(app, "dns", 53, "UDP"), (app, "dns", 53, "TCP"), (app, "db", postgres, "TCP")}
    for app in ("web", "worker", "retention", "deliver"):
        expected.add((app, "redis", redis_port, "TCP"))
    # The webhooks' receivers: https on public addresses, from the delivery worker alone.
    expected.add(("deliver", "internet", 443, "TCP"))
    # The retention scheduler (RQ's cron) only enqueues: Redis, never PostgreSQL.
    expected |= {("retention", "dns", 53, "UDP"), ("retention", "dns", 53, "TCP")}
    expected |= {
        # The app port, from the controller's pods alone (the web trusts their X-Forwarded-For).
        ("ingress", "web", int(web["APP_PORT"]), "TCP"),
        ("prometheus", "web", int(web["WEB_METRICS_PORT"]), "TCP"),
        ("prometheus", "worker", int(worker["WORKER_METRICS_PORT"]), "TCP"),
        ("prometheus", "deliver", int(env_of(objects, app_container(objects, "Deployment", "survey-deliver"))
                                      ["DELIVER_METRICS_PORT"]), "TCP"),
        # The ScaledObject's scaler reads the queue's length.
        ("keda", "redis", redis_port, "TCP"),
    }
    assert allowed_flows(objects) == expected


def test_network_policies_name_each_outsider_once(base):
    """The cluster operator adjusts each namespace in one place."""
    named = [peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
             for policy in base if policy["kind"] == "NetworkPolicy"
             for rule in policy["spec"].get("ingress", []) + policy["spec"].get("egress", [])
             for peer in rule.get("from", []) + rule.get("to", []) if "namespaceSelector" in peer]
    assert sorted(named) == sorted({"ingress-nginx", "monitoring", "kube-system", "keda"})


def test_the_flow_check_can_fail(base):
    """allowed_flows sees a hole: an egress rule with no peer lets the web out anywhere."""
    opened = copy.deepcopy(base)
    policy = find(opened, "NetworkPolicy", "survey-to-redis")
    policy["spec"]["egress"].append({"ports": [{"port": 443}]})
    flows = allowed_flows(opened) - allowed_flows(base)
    assert ("web", "internet", 443, "TCP") in flows and ("worker", "elsewhere", 443, "TCP") in flows


# -- overlays/dev ------------------------------------------------------------

def test_dev_redis_runs_redis_conf():
    objects = rendered(BASE.parent / "overlays" / "dev")
    conf = find(objects, "ConfigMap", "redis-config")["data"]["redis.conf"]
    redis_conf = ROOT / "redis" / "redis.conf"
    if redis_conf.exists():
        assert conf == redis_conf.read_text()
    settings = dict(line.split(None, 1) for line in conf.splitlines() if line and not line.startswith("#"))
    # Queued submissions survive a restart and are never evicted.
    assert settings["appendonly"] == "yes"
    assert settings["maxmemory-policy"] == "noeviction"
    (container,) = containers(find(objects, "StatefulSet", "redis"))
    assert container["args"][:2] == ["redis-server", "/etc/redis/redis.conf"]
    mount = [m for m in container["volumeMounts"] if m["mountPath"] == "/etc/redis"]
    assert mount and "command" not in container
    # The servers answer at the URLs of config.yaml.
    config = find(objects, "ConfigMap", "survey-config")["data"]
    for variable, service in (("REDIS_URL", "redis"), ("DATABASE_URL", "db")):
        url = urlsplit(config[variable])
        port = find(objects, "Service", url.hostname)["spec"]["ports"][0]["port"]
        assert (url.hostname, url.port) == (service, port)
    for name in ("db", "redis"):
        claims = find(objects, "StatefulSet", name)["spec"]["volumeClaimTemplates"]
        assert [c["metadata"]["name"] for c in claims] == ["data"]


# -- KEDA ----------------------------------------------------------------------

# The fields of KEDA's ScaledObject (keda.sh/v1alpha1) that these manifests
# may use, from KEDA's CRD; kubernetes-validate has no schema for it.
SCALED_OBJECT_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object",
            "required": ["scaleTargetRef", "triggers"],
            "additionalProperties": False,
            "properties": {
                "scaleTargetRef": {
                    "type": "object", "required": ["name"], "additionalProperties": False,
                    "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                                   "name": {"type": "string"}, "envSourceContainerName": {"type": "string"}}},
                "minReplicaCount": {"type": "integer", "minimum": 0},
                "maxReplicaCount": {"type": "integer", "minimum": 1},
                "pollingInterval": {"type": "integer", "minimum": 1},
                "cooldownPeriod": {"type": "integer", "minimum": 0},
                "idleReplicaCount": {"type": "integer", "minimum": 0},
                "triggers": {
                    "type": "array", "minItems": 1,
                    "items": {
                        "type": "object", "required": ["type", "metadata"], "additionalProperties": False,
                        "properties": {
                            "type": {"type": "string"},
                            "name": {"type": "string"},
                            "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
                            "authenticationRef": {"type": "object"},
                        }}},
            }},
    },
}
# KEDA's redis (list) scaler: its metadata keys.
REDIS_TRIGGER_KEYS = {"address", "host", "port", "addressFromEnv", "hostFromEnv", "portFromEnv",
                      "passwordFromEnv", "usernameFromEnv", "databaseIndex", "enableTLS", "listName",
                      "listLength", "activationListLength"}


def test_keda_scaled_object(objects):
    import jsonschema

    (scaled,) = [obj for obj in objects if obj["kind"] == "ScaledObject"]
    jsonschema.validate(scaled, SCALED_OBJECT_SCHEMA)
    spec = scaled["spec"]
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "redis"
    assert set(trigger["metadata"]) <= REDIS_TRIGGER_KEYS
    config = find(objects, "ConfigMap", "survey-config")["data"]
    # RQ's own key for the queue the web and the worker use (no server needed to build it).
    queue = rq.Queue(config["QUEUE_NAME"], connection=redis.Redis())
    assert trigger["metadata"]["listName"] == queue.key == "rq:queue:submissions"
    # The same Redis as REDIS_URL.
    url = urlsplit(config["REDIS_URL"])
    assert trigger["metadata"]["address"] == f"{url.hostname}:{url.port}"
    assert trigger["metadata"]["databaseIndex"] == (url.path.lstrip("/") or "0")
    # It scales the worker's Deployment, and never below one worker.
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "survey-worker"}
    worker = find(objects, "Deployment", spec["scaleTargetRef"]["name"])
    assert [c["command"] for c in containers(worker)] == [procfile()["worker"]]
    assert spec["minReplicaCount"] == 1
    assert spec["maxReplicaCount"] >= spec["minReplicaCount"]
    assert int(trigger["metadata"]["listLength"]) > 0


def test_scaled_object_schema_rejects_a_misspelt_field(base):
    import jsonschema

    scaled = copy.deepcopy(find(base, "ScaledObject", "survey-worker"))
    scaled["spec"]["minReplicas"] = 1  # the HPA's name, not KEDA's
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(scaled, SCALED_OBJECT_SCHEMA)
