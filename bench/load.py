"""The load generator: wrk with bench/post.lua, sending distinct valid form posts."""

import json
import os
import secrets
import signal
import subprocess
import urllib.parse
from pathlib import Path

from loopback.browser import Browser

LUA = Path(__file__).resolve().parent / "post.lua"
# wrk's own duration, a cap: the harness stops it as soon as every thread
# has its last post answered.
GRACE_S = 60


def session(base_url):
    """GET the form once: the session cookie and the CSRF token valid with it."""
    browser = Browser(base_url)
    fields = browser.form()
    jar = next(h.cookiejar for h in browser.opener.handlers if hasattr(h, "cookiejar"))
    cookies = "; ".join(f"{c.name}={c.value}" for c in jar)
    assert cookies and fields.get("csrf_token"), "the form gave no session cookie or CSRF token"
    return cookies, urllib.parse.quote_plus(fields["csrf_token"])


def post(base_url, seconds, connections, max_requests=0, delay_ms=0, timeout_s=30):
    """POST for `seconds` (or until `max_requests` in total) from `connections`
    connections; return the counts and latency percentiles of the posts, and
    this run's id nonce (every submission id of the run starts with it)."""
    cookie, csrf = session(base_url)
    nonce = secrets.token_hex(8)[:15]
    env = dict(os.environ, BENCH_COOKIE=cookie, BENCH_CSRF=csrf, BENCH_NONCE=nonce,
               BENCH_SECONDS=str(seconds), BENCH_DELAY_MS=str(delay_ms),
               BENCH_MAX_REQUESTS=str(-(-max_requests // connections) if max_requests else 0))
    argv = ["wrk", "-t", str(connections), "-c", str(connections), "-d", f"{int(seconds + GRACE_S)}s",
            "--timeout", f"{timeout_s}s", "-s", str(LUA), base_url + "/"]
    wrk = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    try:
        done_threads = 0
        for line in wrk.stdout:
            lines.append(line)
            if line.startswith("BENCH_THREAD_DONE"):
                done_threads += 1
                if done_threads == connections:
                    wrk.send_signal(signal.SIGINT)  # wrk stops and reports
        wrk.wait(30)
    finally:
        if wrk.poll() is None:
            wrk.kill()
            wrk.wait()
    line = next((l for l in lines if l.startswith("BENCH_RESULT ")), None)
    if wrk.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({wrk.returncode}): {''.join(lines)[-2000:]} {wrk.stderr.read()[-2000:]}")
    result = json.loads(line.split(" ", 1)[1])
    result["nonce"] = nonce
    result["rate"] = result["accepted"] / result["seconds"] if result["seconds"] else 0.0
    return result
