"""The settings table (docs/running-locally.md, "Settings") lists exactly the
variables the code reads (issue 13): web/config.py and worker/config.py for
the services, and the runner's scripts for what only `make run` reads."""

import ast
import re

from tests.servers import ROOT

# survey/ reads the survey file's overrides, for the web, the worker and `python -m survey check`.
CONFIGS = [ROOT / "web" / "config.py", ROOT / "worker" / "config.py", ROOT / "survey" / "__init__.py"]
# What reads the runner's own settings (ports, data directory) and the proxy's.
RUNNER_SCRIPTS = [ROOT / "scripts" / "run", ROOT / "scripts" / "run-db", ROOT / "scripts" / "run-redis",
                  ROOT / "proxy" / "run"]
# The secret helpers: NAME or the file NAME_FILE names.
SECRET_HELPERS = {"secret", "_secret"}


def _string(node):
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def read_by_config(path):
    """Names the module reads from its `env` mapping."""
    names = set()
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr == "get" and getattr(func.value, "id", None) == "env":
                if node.args and _string(node.args[0]):
                    names.add(_string(node.args[0]))
            if getattr(func, "id", None) in SECRET_HELPERS and len(node.args) == 2 and _string(node.args[1]):
                names |= {_string(node.args[1]), _string(node.args[1]) + "_FILE"}
            # Any other helper handed the environment and a name (_flag(env, "HTTPS", "0")).
            elif (len(node.args) >= 2 and getattr(node.args[0], "id", None) == "env"
                  and _string(node.args[1])):
                names.add(_string(node.args[1]))
        if isinstance(node, ast.Subscript) and getattr(node.value, "id", None) == "env" and _string(node.slice):
            names.add(_string(node.slice))
        # worker/config.py: the roles' password variables, read through secret() in a loop.
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "ROLE_PASSWORDS" for t in node.targets):
            for value in node.value.values:
                names |= {value.value, value.value + "_FILE"}
    return names


def read_by_runner():
    names = set()
    for script in RUNNER_SCRIPTS:
        if script.exists():
            names |= set(re.findall(r"\$\{([A-Z][A-Z0-9_]*):-", script.read_text()))
    return names


SETTINGS_PAGE = ROOT / "docs" / "running-locally.md"


def documented_settings():
    """The names in the first column of the first table under "## Settings"."""
    section = SETTINGS_PAGE.read_text().split("\n## Settings\n", 1)[1]
    table = next(block for block in section.split("\n\n") if block.startswith("| variable |"))
    names = set()
    for row in table.splitlines()[2:]:
        first_cell = row.split("|")[1]
        names |= set(re.findall(r"`([A-Z][A-Z0-9_]*)`", first_cell))
        # "(each also as `…_FILE`)": the _FILE twin of each name in the cell.
        if "…_FILE" in first_cell:
            names |= {name + "_FILE" for name in re.findall(r"`([A-Z][A-Z0-9_]*)`", first_cell)}
    return names


def test_settings_table_is_what_the_code_reads():
    code = set().union(*(read_by_config(path) for path in CONFIGS))
    runner = read_by_runner()
    documented = documented_settings()
    assert sorted(code - documented) == [], "read but not in the settings table"
    assert sorted(documented - code - runner) == [], "in the settings table but read by nothing"


def test_the_parsers_find_what_they_should():
    """The test above can fail: it finds names both ways."""
    web = read_by_config(ROOT / "web" / "config.py")
    worker = read_by_config(ROOT / "worker" / "config.py")
    assert {"REDIS_URL", "SECRET_KEY", "SECRET_KEY_FILE", "WEB_DATABASE_URL", "JOB_TIMEOUT"} <= web
    assert {"WORKER_TTL", "AUDITOR_DATABASE_PASSWORD_FILE", "WORKER_METRICS_PORT"} <= worker
    assert {"DATA_DIR", "DB_PORT", "REDIS_PORT"} <= read_by_runner()
    assert {"PORT", "QUEUE_NAME", "WEB_DATABASE_PASSWORD_FILE", "SECRET_KEY_FILE"} <= documented_settings()
