# On PYTHONPATH for RQ's suite only (test_rq_suite.py): every Python process
# the suite starts, its worker pools and CLI runs included, loads the plugin.
import rq_suite_plugin  # noqa: F401
