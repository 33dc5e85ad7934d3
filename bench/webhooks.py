"""The webhooks' step (issue 25): does a receiver that is slow or down touch
the form or the storage, and how many deliveries a second does one delivery
worker (`python -m worker.deliver`) send?

The cat survey with one webhook, to a receiver on loopback (WEBHOOK_ALLOW_PRIVATE=1)
that answers at once ("up"), after longer than WEBHOOK_TIMEOUT ("slow"), or
never listens ("down").  For each: the web, one store worker and one delivery
worker running, posts at a steady rate the pipeline keeps up with, then the
post's latency (wrk) and the store's (stored_at - submitted_at).  Then a
backlog of stored answers' deliveries, drained by one delivery worker to the
receiver that is up."""

import shutil
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from loopback.servers import ROOT, free_port, wait_until
from survey import webhooks

from . import load
from .rounds import check_exactly_once, wait_stored
from .stack import Service

WEBHOOK_TIMEOUT_S = 2
OFFERED_RATE = 100  # posts/s: well inside what the web and one worker take
CONNECTIONS = 4
DELIVERY_BACKLOG = 2000


class Receiver:
    """Counts what it is sent; answers 204 at once, or after longer than the timeout."""

    def __init__(self):
        self.port = free_port()
        self.got = 0
        self.slow = False
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                receiver.got += 1
                if receiver.slow:
                    time.sleep(WEBHOOK_TIMEOUT_S + 1)
                self.send_response(204)
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def _survey(workdir, url):
    folder = workdir / "webhook-survey"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(ROOT / "survey", folder, ignore=shutil.ignore_patterns("*.py", "__pycache__", "questions"))
    path = folder / "cats.toml"
    path.write_text(path.read_text() + f'\n[[webhooks]]\nurl = "{url}"\nsecret_env = "BENCH_WEBHOOK_SECRET"\n')
    return path


def _start_deliver(stack, env):
    """`python -m worker.deliver`, once it has registered with RQ (it writes its name file then)."""
    name_file = stack.workdir / "deliver.name"
    name_file.unlink(missing_ok=True)
    deliver = Service("deliver", [sys.executable, "-m", "worker.deliver"],
                      stack.env(DELIVER_NAME_FILE=name_file, **env), stack.workdir / "deliver.log")
    wait_until(lambda: deliver.alive() and name_file.exists() and name_file.stat().st_size, 60, "the delivery worker")
    return deliver


def run(stack, o, log):
    receiver = Receiver()
    nobody = free_port()  # nothing listens here: the receiver that is down
    secret = webhooks.new_secret()
    out = {}
    try:
        for mode in ("up", "slow", "down"):
            log(f"  webhooks: receiver {mode}")
            port = nobody if mode == "down" else receiver.port
            receiver.slow = mode == "slow"
            env = {"SURVEY_FILE": _survey(stack.workdir, f"http://127.0.0.1:{port}/hook"),
                   "BENCH_WEBHOOK_SECRET": secret, "WEBHOOK_ALLOW_PRIVATE": "1",
                   "WEBHOOK_TIMEOUT": WEBHOOK_TIMEOUT_S}
            stack.stop_web()
            stack.reset()
            stack.start_web("queue", **env)
            stack.start_workers(1, **env)
            stack.wait_workers_ready()
            deliver = _start_deliver(stack, env)
            got_before = receiver.got
            try:
                r = load.post(stack.web_url, o.duration, CONNECTIONS, delay_ms=int(1000 * CONNECTIONS / OFFERED_RATE))
                wait_stored(stack, r["accepted"], o.drain_timeout)
                stats = check_exactly_once(stack, r)
            finally:
                deliver.stop()
                stack.stop_workers()
            out[mode] = {"offered_rate": r["rate"], "post_p50_ms": r["p50_ms"], "post_p99_ms": r["p99_ms"],
                         "store_p50_ms": stats["e2e_p50_ms"], "store_p99_ms": stats["e2e_p99_ms"],
                         "stored": stats["rows"], "received": receiver.got - got_before}

        log("  webhooks: a backlog of deliveries, one delivery worker")
        receiver.slow = False
        env = {"SURVEY_FILE": _survey(stack.workdir, f"http://127.0.0.1:{receiver.port}/hook"),
               "BENCH_WEBHOOK_SECRET": secret, "WEBHOOK_ALLOW_PRIVATE": "1", "WEBHOOK_TIMEOUT": WEBHOOK_TIMEOUT_S}
        stack.stop_web()
        stack.reset()
        stack.start_web("queue", **env)
        stack.start_workers(1, **env)
        stack.wait_workers_ready()
        r = load.post(stack.web_url, 60, 10, max_requests=min(o.backlog, DELIVERY_BACKLOG))
        wait_stored(stack, r["accepted"], o.drain_timeout)
        stack.stop_workers()
        waiting = stack.queued("webhooks")
        got_before = receiver.got
        deliver = _start_deliver(stack, env)
        started = time.monotonic()
        try:
            wait_until(lambda: receiver.got - got_before >= waiting and stack.queued("webhooks") == 0,
                       o.drain_timeout, "the deliveries", interval=0.05)
        finally:
            deliver.stop()
        seconds = time.monotonic() - started
        out["drain"] = {"deliveries": waiting, "seconds": seconds, "per_s": waiting / seconds if seconds else 0.0}
    finally:
        receiver.stop()
        stack.stop_web()
    return out


def table(out):
    lines = ["webhooks (one webhook on the cat survey; the web, one worker, one delivery worker; "
             f"{OFFERED_RATE} posts/s offered)"]
    for mode in ("up", "slow", "down"):
        m = out[mode]
        lines.append(f"  receiver {mode:4}  post p50 {m['post_p50_ms']:6.1f} ms  p99 {m['post_p99_ms']:6.1f} ms   "
                     f"store p50 {m['store_p50_ms']:7.1f} ms  p99 {m['store_p99_ms']:7.1f} ms   "
                     f"{m['stored']} stored, {m['received']} received")
    d = out["drain"]
    lines.append(f"  one delivery worker: {d['deliveries']} deliveries in {d['seconds']:.1f} s, "
                 f"{d['per_s']:.0f} deliveries/s")
    return "\n".join(lines)
