"""gunicorn settings, read from the same environment in the runner and the image."""

import multiprocessing
import os

wsgi_app = "web:create_app()"
bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '2154')}"
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2 + 1))
# Loaded once before forking: every worker shares the app, and its SECRET_KEY.
preload_app = True
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
# Redis answers in microseconds; a request stuck longer than this is broken.
timeout = 30
graceful_timeout = 20
control_socket_disable = True  # nothing here uses it; two servers on one machine would share its path
