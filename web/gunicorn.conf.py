"""gunicorn settings, from web/config.py, so the runner and the image agree."""

import glob
import os
import sys
import tempfile

import survey
from survey import applied

# Named so: gunicorn reads every name here, and `config` is one of its settings.
from web import config as web_config
from web.store import Store

# A broken survey file (SURVEY_FILE or any in SURVEYS_DIR) stops gunicorn
# before it binds, with the one line that says what is wrong (not an app's
# traceback from every worker); so does an edit the database has not taken.
try:
    root, folder = survey.all_from_env(os.environ)
    app_config = web_config.from_env(os.environ)
    Store(app_config["DATABASE_URL"], timeout=app_config["WEB_DB_TIMEOUT"]).check_applied([root, *folder.values()])
except (survey.SurveyFileError, applied.NotApplied) as exc:
    sys.exit(f"survey: {exc}")

settings = web_config.server(os.environ)

# prometheus-client picks its multi-process mode when it is first imported, so
# the directory must be in the environment before the app (and web.logs) is
# loaded: web.config imports neither.  Each gunicorn worker writes its
# counters to files there and /metrics adds them up.  Without a directory from
# the environment we use a private one: per-worker numbers would be wrong.
metrics_dir = settings["PROMETHEUS_MULTIPROC_DIR"] or tempfile.mkdtemp(prefix="survey-web-metrics-")
os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
os.makedirs(metrics_dir, exist_ok=True)

from web import heartbeat, logs  # noqa: E402  (needs the environment above)

wsgi_app = "web:create_app()"
# The proxy forwards visitors to the first (or to APP_SOCKET, if set, and the
# form to APP_FORM_SOCKET); Prometheus scrapes the second, which answers
# /metrics and nothing else (web/metrics.py).
bind = [f"{settings['HOST']}:{settings['APP_PORT']}", f"{settings['HOST']}:{settings['WEB_METRICS_PORT']}"]
for socket in (settings["APP_SOCKET"], settings["APP_FORM_SOCKET"]):
    if socket:
        bind.append(f"unix:{socket}")
# Whose X-Forwarded-Proto gunicorn believes: the same as the app's rule
# (web/security.py); gunicorn always believes its unix socket.
forwarded_allow_ips = settings["FORWARDED_ALLOW_IPS"]
workers = settings["WEB_CONCURRENCY"]
# The sync worker, serving the form before anything else (web/workers.py).
worker_class = "web.workers.FormFirstWorker"
# A short queue in front of the workers: overload is refused, not queued (web/config.py).
backlog = settings["WEB_BACKLOG"]
# Loaded once before forking: every worker shares the app, and its SECRET_KEY.
preload_app = True
accesslog = "-"
errorlog = "-"
loglevel = settings["LOG_LEVEL"]
# The app's lines, gunicorn's and the access log in one format (LOG_FORMAT=json for JSON).
logconfig_dict = logs.config(settings["LOG_FORMAT"], loglevel, settings["LOG_KEY"])
# Redis answers in microseconds; a request stuck longer than this is broken.
# A long /results.csv is not stuck: it proves progress through web/heartbeat.py.
timeout = 30
graceful_timeout = 20
control_socket_disable = True  # nothing here uses it; two servers on one machine would share its path


def on_starting(server):
    # Counters left by a previous run would otherwise be added to this one's.
    for path in glob.glob(os.path.join(metrics_dir, "*.db")):
        os.remove(path)


def post_worker_init(worker):
    heartbeat.attach(worker.notify)


def child_exit(server, worker):
    # A dead worker's counters still count; its live gauges must go.
    from prometheus_client import multiprocess
    multiprocess.mark_process_dead(worker.pid)
