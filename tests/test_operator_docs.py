"""docs/operator.md says which rq-dashboard and rq-exporter work with this
queue, as checked against the RQ and redis-py the worker runs: when those
change, the page must be checked again, and this fails until it says so."""

import re

from tests.servers import ROOT


def pins(text):
    return dict(re.findall(r"\b([a-z][a-z0-9-]*)==([\w.]+)", text))


def test_operator_page_was_checked_with_the_workers_rq_and_redis():
    worker = pins((ROOT / "requirements" / "worker.txt").read_text())
    page = (ROOT / "docs" / "operator.md").read_text()
    install = pins("\n".join(line for line in page.splitlines() if "pip install" in line))
    assert install["rq"] == worker["rq"]
    assert install["redis"] == worker["redis"]
    # The versions the page's table speaks of are those it installs.
    for tool in ("rq-dashboard", "rq-exporter"):
        assert re.search(rf"\[{tool}\]\([^)]*\) \| {re.escape(install[tool])} \|", page), tool
    # Each tool's flags, as checked.
    assert "rq-dashboard -j " in page and "--no-deps rq-exporter==" in page
