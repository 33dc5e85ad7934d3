"""The docs cannot rot quietly: the site builds with `mkdocs build --strict`
(a link to a missing page or heading fails), every command the README's quick
start shows is one the test suite runs, the auditor's password is where the
auditor's page says, and `make docs` serves the site."""

import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import yaml
from markdown.extensions.toc import slugify

from tests.servers import ROOT, free_port, wait_until

MKDOCS = Path(sys.executable).parent / "mkdocs"

# Each command of the README's quick start, with what runs it and a string
# that shows it does: the test (or CI script) must contain it.
QUICK_START_RUN_BY = {
    "make run": ("tests/test_runner.py", '["make", "run"]'),
    "make test": (".ci/run", "exec make test"),
    # With tests/compose/compose.host.yml on top, as `up --build --wait`.
    "docker compose up": ("tests/compose/test_compose_live.py", 'self.compose("up", '),
}


def quick_start_commands(readme):
    """The lines of the fenced blocks between "## Quick start" and the next heading."""
    section = readme.split("\n## Quick start\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^```[a-z]*\n(.*?)^```", section, flags=re.M | re.S)
    return [line.split("#", 1)[0].strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_the_site_builds_strictly(tmp_path):
    result = subprocess.run([MKDOCS, "build", "--strict", "--site-dir", tmp_path / "site"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "site" / "running-locally" / "index.html").exists()


def test_a_broken_anchor_fails_the_build(tmp_path):
    """The check above can fail: strict mode refuses a link to a heading that is not there."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# Home\n\n[gone](other.md#no-such-heading)\n")
    (docs / "other.md").write_text("# Other\n")
    config = (ROOT / "mkdocs.yml").read_text().split("\nnav:", 1)[0]
    (tmp_path / "mkdocs.yml").write_text(config)
    result = subprocess.run([MKDOCS, "build", "--strict"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "no-such-heading" in result.stderr


def test_every_quick_start_command_is_run_by_a_test():
    commands = quick_start_commands((ROOT / "README.md").read_text())
    assert "make run" in commands  # the parser finds the blocks
    for command in commands:
        assert command in QUICK_START_RUN_BY, f"{command!r}: no test runs it; add one, or take it out of the quick start"
    for command, (path, marker) in QUICK_START_RUN_BY.items():
        assert marker in (ROOT / path).read_text(), f"{path} no longer runs {command!r}"


def test_the_readmes_links_into_docs_exist():
    """The README is not part of the site, so mkdocs does not check its links."""
    readme = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\((?!https?:)([^)#]+)(?:#([^)]*))?\)", readme) + re.findall(r'src="([^"]+)"()', readme)
    assert len(links) > 10
    for path, anchor in links:
        target = ROOT / path
        assert target.exists(), path
        if anchor:  # as mkdocs makes a heading's id
            headings = re.findall(r"^#+ (.*)$", target.read_text(), flags=re.M)
            assert anchor in {slugify(heading.replace("`", ""), "-") for heading in headings}, f"{path}#{anchor}"


def test_make_docs_serves_the_site_on_the_loopback():
    port = free_port()
    server = subprocess.Popen(["make", "docs", f"DOCS_PORT={port}"], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def page():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/auditor/", timeout=2) as answer:
                    return answer.read().decode()
            except OSError:
                assert server.poll() is None, server.stdout.read().decode()
                return None
        assert "migrate-secrets" in wait_until(page, 60, "make docs to serve the site")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def test_the_auditors_password_is_where_the_auditor_page_says():
    """docs/auditor.md's commands read the file the migration sets the auditor's password from."""
    page = (ROOT / "docs" / "auditor.md").read_text()

    service, path = re.search(r"docker compose run --rm --no-deps -T (\S+) cat (\S+)", page).groups()
    compose = yaml.safe_load((ROOT / "compose.yml").read_text())["services"][service]
    assert compose["environment"]["AUDITOR_DATABASE_PASSWORD_FILE"] == path
    assert any(volume.startswith("migrate-secrets:" + os.path.dirname(path)) for volume in compose["volumes"])

    namespace, secret, key = re.search(
        r"kubectl -n (\S+) get secret (\S+) -o jsonpath='\{\.data\.(\w+)\}'", page).groups()
    base = ROOT / "deploy" / "kubernetes" / "base"
    assert yaml.safe_load((base / "kustomization.yaml").read_text())["namespace"] == namespace
    job = yaml.safe_load((base / "migrate.yaml").read_text())["spec"]["template"]["spec"]
    (volume,) = [v["name"] for v in job["volumes"] if v.get("secret", {}).get("secretName") == secret]
    (container,) = job["containers"]
    (mount,) = [m["mountPath"] for m in container["volumeMounts"] if m["name"] == volume]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["AUDITOR_DATABASE_PASSWORD_FILE"] == f"{mount}/{key}"
