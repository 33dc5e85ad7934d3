# The commands of the README.
.PHONY: run test test-fast bench docs

# The whole pipeline without Docker: PostgreSQL, Redis, the worker and the web.
run:
	scripts/bootstrap run
	scripts/run

# Every test, against real servers the tests start themselves; the slowest are listed at the end.
test:
	scripts/bootstrap test
	.venv/bin/python -m pytest --durations=20 $(PYTEST_ARGS)

# The contributor's loop (about a minute): every test but the slow tiers (Docker,
# Chromium, the benchmark's smoke run, checkov, RQ's own suite, the fault tests and
# make run's own test; see pytest.ini), still against real servers.
test-fast:
	scripts/bootstrap test
	.venv/bin/python -m pytest -m "not slow" --durations=10 $(PYTEST_ARGS)

# Does the queue pay for itself? Figures against the naive design and the
# machine's limits, and visitors per second (bench/, about 9 minutes); never part of `make test`.
# Options: make bench BENCH_ARGS='--backlog 5000 --rounds 3'  (see --help)
bench:
	scripts/bootstrap bench
	.venv/bin/python -m bench $(BENCH_ARGS)

# The docs (docs/, mkdocs.yml) as a site on http://127.0.0.1:8000/, rebuilt as
# you edit them; `make test` builds them with --strict. Another port: DOCS_PORT=8001.
DOCS_PORT ?= 8000
docs:
	scripts/bootstrap docs
	.venv/bin/mkdocs serve --dev-addr 127.0.0.1:$(DOCS_PORT)
