"""gunicorn settings, read from the same environment in the runner and the image."""

import glob
import multiprocessing
import os
import tempfile

# prometheus-client picks its multi-process mode when it is first imported, so
# the directory must be in the environment before the app (and web.logs,
# which imports the web package) is loaded.  Each gunicorn worker writes its
# counters to files there and /metrics adds them up.  Without a directory from
# the environment we use a private one: per-worker numbers would be wrong.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="survey-web-metrics-")
os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)

from web import logs  # noqa: E402  (needs the environment above)

wsgi_app = "web:create_app()"
# Behind the proxy (proxy/run), which listens on PORT and forwards here.
bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('APP_PORT', '2156')}"
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2 + 1))
# Loaded once before forking: every worker shares the app, and its SECRET_KEY.
preload_app = True
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
# The app's lines, gunicorn's and the access log in one format (LOG_FORMAT=json for JSON).
logconfig_dict = logs.config(os.environ.get("LOG_FORMAT", "text"), loglevel)
# Redis answers in microseconds; a request stuck longer than this is broken.
timeout = 30
graceful_timeout = 20
control_socket_disable = True  # nothing here uses it; two servers on one machine would share its path


def on_starting(server):
    # Counters left by a previous run would otherwise be added to this one's.
    for path in glob.glob(os.path.join(os.environ["PROMETHEUS_MULTIPROC_DIR"], "*.db")):
        os.remove(path)


def child_exit(server, worker):
    # A dead worker's counters still count; its live gauges must go.
    from prometheus_client import multiprocess
    multiprocess.mark_process_dead(worker.pid)
