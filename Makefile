# The two commands of the README.
.PHONY: run test

# The whole pipeline without Docker: PostgreSQL, Redis, the worker and the web.
run:
	scripts/bootstrap run
	scripts/run

# Every test, against real servers the tests start themselves.
test:
	scripts/bootstrap test
	.venv/bin/python -m pytest $(PYTEST_ARGS)
