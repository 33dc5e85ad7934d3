"""Tell gunicorn's arbiter that a long response is making progress.

A sync worker proves it is alive by touching its heartbeat file between
requests; the arbiter kills a worker silent for `timeout` seconds, even one
streaming a long /results.csv, which leaves the client a truncated file
after a 200.  A streamed response calls beat() as it goes, so only a worker
that is really stuck (no chunk for `timeout` seconds) is killed.
"""

import time

_notify = None
_last = 0.0
# Often enough for any timeout above a couple of seconds; rarely enough to cost nothing.
INTERVAL = 1.0


def attach(notify):
    """Called in each gunicorn worker after it forks (web/gunicorn.conf.py)."""
    global _notify
    _notify = notify


def beat():
    global _last
    if _notify is None:  # not under gunicorn (tests' client, flask run)
        return
    now = time.monotonic()
    if now - _last >= INTERVAL:
        _last = now
        _notify()
