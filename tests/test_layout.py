"""The tree shows the product: scripts/ holds only what `make run` uses, the
benchmark borrows nothing from the tests, and `make test-fast` leaves out
exactly the slow tiers."""

import re
import subprocess
import sys

from tests.servers import ROOT


def code_of(path):
    """The file without its comment lines: a script is used, not just named."""
    return "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("#"))


def test_scripts_holds_only_what_make_run_uses():
    makefile = (ROOT / "Makefile").read_text()
    run_target = re.search(r"^run:\n((?:\t.*\n)+)", makefile, re.M)[1]
    scripts = {path.name: path for path in (ROOT / "scripts").iterdir()}
    used, texts = set(), [run_target, code_of(ROOT / "Procfile")]
    while texts:
        text = texts.pop()
        for name, path in scripts.items():
            if name not in used and re.search(rf"(^|[/\s\"']){re.escape(name)}\b", text, re.M):
                used.add(name)
                texts.append(code_of(path))
    assert used == set(scripts), f"not used by make run: {sorted(set(scripts) - used)}"


def test_the_benchmark_imports_nothing_from_the_tests():
    importers = [f"{path.relative_to(ROOT)}: {line.strip()}"
                 for path in (ROOT / "bench").rglob("*.py")
                 for line in path.read_text().splitlines()
                 if re.match(r"\s*(from|import)\s+tests\b", line)]
    assert importers == []


def collected(*args):
    result = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                             "--continue-on-collection-errors", *args],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    return {line for line in result.stdout.splitlines() if "::" in line}


def test_test_fast_leaves_out_the_slow_tiers_and_nothing_else():
    everything, fast = collected(), collected("-m", "not slow")
    slow = {test.split("::")[0] for test in everything - fast}
    assert {"tests/compose/test_compose_live.py", "tests/test_bench.py",
            "tests/rq_suite/test_rq_suite.py"} <= slow
    assert any(path.startswith("tests/browser/") for path in slow)
    # The Kubernetes checks stay in the quick loop; only checkov's run is left out.
    kubernetes = {test for test in everything if test.startswith("tests/kubernetes/")}
    assert [test.split("::")[1] for test in kubernetes - fast] == ["test_checkov_finds_nothing_but_the_skips_we_explain"]
    assert not any(path.startswith(("tests/test_pipeline", "tests/compose/test_compose_config")) for path in slow)
    assert len({test.split("::")[0] for test in fast}) > 25
