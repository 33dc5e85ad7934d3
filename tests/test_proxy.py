"""nginx in front of gunicorn (proxy/run), as `make run` starts them: what the
public port serves and hides, and that slow clients cannot take the site down."""

import base64
import http.client
import http.server
import os
import socket
import socketserver
import subprocess
import threading
import time
import uuid

import pytest

from tests.conftest import AUDITOR_PASSWORD
from tests.frontend import FORM_HEADERS, Front, Process, percentile, post_body, request
from tests.servers import ROOT, free_port, wait_until
from web.security import SECURITY_HEADERS

SLOW_CLIENTS = 200


@pytest.fixture(scope="module")
def front(password_pg, tmp_path_factory):
    # On a cluster that asks passwords, so the auditor's sign-in is on.
    front = Front(password_pg, tmp_path_factory.mktemp("front"), AUDITOR_DATABASE_PASSWORD=AUDITOR_PASSWORD)
    try:
        yield front.start()
    finally:
        front.destroy()


@pytest.mark.parametrize("path", ["/metrics", "/metrics?format=text", "//metrics", "/%6Detrics"])
def test_the_public_port_never_shows_metrics(front, path):
    status, headers, _ = request(front.port, "GET", path)
    assert status == 404
    assert headers["Server"] == "nginx"  # nginx's answer: gunicorn was never asked


def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_only_the_proxy_may_say_who_the_client_is(front):
    """Wrong passwords with a new X-Forwarded-For each time, round every
    listener the stack opens: the real address is locked out all the same."""
    listeners = {"proxy": front.port, "app": front.app_port, "metrics": front.metrics_port}
    seen = []
    for i in range(6):
        for name, port in listeners.items():
            fresh = f"203.0.113.{len(seen)}"
            status, _, _ = request(port, "GET", "/results.csv", source="127.0.0.31", headers={
                "Authorization": basic("auditor", f"guess {i}"), "X-Forwarded-For": fresh, "X-Real-IP": fresh})
            seen.append((name, status))
    # The metrics listener answers /metrics and nothing else.
    assert {status for name, status in seen if name == "metrics"} == {404}
    tried = [status for name, status in seen if name != "metrics"]
    assert tried == [401] * 5 + [429] * 7, seen
    # Locked out is the address, whichever way it comes, even with the right password.
    right = {"Authorization": basic("auditor", AUDITOR_PASSWORD), "X-Forwarded-For": "203.0.113.99"}
    assert request(front.port, "GET", "/results.csv", headers=right, source="127.0.0.31")[0] == 429
    assert request(front.app_port, "GET", "/results.csv", headers=right, source="127.0.0.31")[0] == 429
    assert request(front.port, "GET", "/results.csv", headers=right, source="127.0.0.32")[0] == 200


def test_a_client_of_gunicorn_cannot_claim_the_proxys_rate_limit(front):
    status, _, body = request(front.app_port, "POST", "/", "name=x", {**FORM_HEADERS, "X-Survey-Rate-Limited": "1"})
    assert status == 400 and "rate" not in body.lower()


def test_static_files_come_from_nginx_with_the_apps_security_headers(front):
    status, headers, body = request(front.port, "GET", "/static/style.css")
    assert status == 200
    assert body == (ROOT / "web" / "static" / "style.css").read_text()
    assert headers["Server"] == "nginx"
    assert headers["Cache-Control"] == "max-age=3600"
    for name, value in SECURITY_HEADERS.items():
        assert headers[name] == value, name
    assert "/static/style.css" not in front.processes["web"].log()


def test_pages_come_from_the_app_through_the_proxy(front):
    status, headers, body = request(front.port, "GET", "/")
    assert status == 200 and 'name="csrf_token"' in body
    assert headers["Content-Security-Policy"] == SECURITY_HEADERS["Content-Security-Policy"]
    assert headers["Cache-Control"] == "no-store"


def test_a_post_through_the_proxy_is_stored(front):
    cookie, token = front.form()
    sid = str(uuid.uuid4())
    status, headers, body = request(front.port, "POST", "/", post_body(token, sid, name="Proxied"),
                                    {**FORM_HEADERS, "Cookie": cookie})
    assert status == 303, body
    assert headers["Location"].endswith(f"/submissions/{sid}")
    wait_until(lambda: front.count("SELECT count(*) FROM cats WHERE submission_id = %s", (sid,)), 30,
               "the worker to store the post")


def test_a_body_over_the_apps_limit_never_reaches_gunicorn(front):
    status, headers, _ = request(front.port, "POST", "/", "name=" + "x" * 20000, FORM_HEADERS)
    assert status == 413
    assert headers["Server"] == "nginx"


def open_slow_clients(port, n):
    """n connections that send half a request line and then wait: each one
    held a gunicorn sync worker when gunicorn faced visitors itself."""
    clients = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"GET /slow-client HT")
        clients.append(s)
    return clients


def still_open(s):
    s.setblocking(False)
    try:
        return s.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        s.setblocking(True)


def test_slow_clients_do_not_stop_a_visitor(front, capsys):
    started = time.monotonic()
    clients = open_slow_clients(front.port, SLOW_CLIENTS)
    try:
        cookie, token = front.form()
        gets, posts = [], []
        # A visitor's pace, under the posts' rate limit: 40 pages and 40 posts.
        for i in range(40):
            t = time.perf_counter()
            status, _, _ = request(front.port, "GET", "/")
            gets.append(time.perf_counter() - t)
            assert status == 200
            t = time.perf_counter()
            status, _, body = request(front.port, "POST", "/", post_body(token, str(uuid.uuid4()), name="Visitor"),
                                      {**FORM_HEADERS, "Cookie": cookie})
            posts.append(time.perf_counter() - t)
            assert status == 303, body
            time.sleep(0.06)
        open_now = sum(still_open(s) for s in clients)
        p99_get, p99_post = percentile(gets, 99) * 1000, percentile(posts, 99) * 1000
        with capsys.disabled():
            print(f"\n{SLOW_CLIENTS} slow clients held open ({open_now} still open after "
                  f"{time.monotonic() - started:.1f}s): GET / p50 {percentile(gets, 50) * 1000:.1f} ms, "
                  f"p99 {p99_get:.1f} ms; POST / p50 {percentile(posts, 50) * 1000:.1f} ms, p99 {p99_post:.1f} ms")
        assert open_now == SLOW_CLIENTS, "the slow clients were cut off before the visitor's requests"
        assert p99_get < 200 and p99_post < 200
        # nginx cuts them off after client_header_timeout (10 s), without a request to gunicorn.
        wait_until(lambda: not any(still_open(s) for s in clients), 20, "nginx to close the slow connections",
                   interval=0.5)
        assert time.monotonic() - started >= 9.5
    finally:
        for s in clients:
            s.close()
    assert "/slow-client" not in front.processes["web"].log()


class Echo(http.server.BaseHTTPRequestHandler):
    """Stands where gunicorn would, so the tests see exactly what nginx forwards."""

    def do_GET(self):
        self.record(b"")

    def do_POST(self):
        self.record(self.rfile.read(int(self.headers.get("Content-Length", 0))))

    def record(self, body):
        self.server.seen.append((self.command, dict(self.headers), body))
        status = 429 if self.headers.get("X-Survey-Rate-Limited") == "1" else 200
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@pytest.fixture
def echo_proxy(tmp_path):
    """start(**env) -> (proxy port, the requests the app got): proxy/run in front of Echo."""
    app = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    app.seen = []
    threading.Thread(target=app.serve_forever, daemon=True).start()
    started = []

    def start(**settings):
        port = free_port()
        env = {**os.environ, "PORT": str(port), "APP_PORT": str(app.server_address[1]),
               "PROXY_RUN_DIR": str(tmp_path / f"proxy{len(started)}"), **settings}
        env.pop("DATA_DIR", None)
        started.append(Process("proxy", env, tmp_path / f"proxy{len(started)}.log"))
        wait_until(lambda: nginx_answers(port), 30, "nginx")
        app.seen.clear()
        return port, app.seen

    yield start
    for proc in started:
        proc.stop()
    app.shutdown()


def nginx_answers(port):
    """Whatever the app behind it says."""
    try:
        return request(port, "GET", "/healthz", timeout=2)[2] is not None
    except OSError:
        return False


def test_the_app_gets_the_client_address_and_never_a_clients_rate_limit_header(echo_proxy):
    port, seen = echo_proxy()
    status, _, _ = request(port, "POST", "/", "a=1", {**FORM_HEADERS, "X-Survey-Rate-Limited": "1",
                                                      "X-Forwarded-For": "203.0.113.9",
                                                      "X-Forwarded-Proto": "https"}, source="127.0.0.7")
    assert status == 200
    ((method, headers, body),) = seen
    assert (method, body) == ("POST", b"a=1")
    assert "X-Survey-Rate-Limited" not in headers
    assert headers["X-Forwarded-For"] == "127.0.0.7"  # overwritten: one trusted hop
    assert headers["X-Forwarded-Proto"] == "http"
    assert headers["X-Forwarded-Host"] == headers["Host"] == f"127.0.0.1:{port}"


def quick_posts(port, n, source):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    statuses = []
    for i in range(n):
        conn.request("POST", "/", f"n={i}", FORM_HEADERS)
        response = conn.getresponse()
        response.read()
        statuses.append(response.status)
    conn.close()
    return statuses


def test_posts_over_the_rate_reach_the_app_marked_with_method_and_body_kept(echo_proxy):
    port, seen = echo_proxy(POST_RATE_LIMIT="5r/s", POST_RATE_BURST="10")
    statuses = quick_posts(port, 40, "127.0.0.8")
    limited = [(m, b) for m, h, b in seen if h.get("X-Survey-Rate-Limited") == "1"]
    # The burst passes unmarked; what follows faster than 5 a second is marked, and answered by the app.
    assert 11 <= len(seen) - len(limited) <= 14 and statuses.count(429) == len(limited), statuses
    assert [body for _, _, body in seen] == [f"n={i}".encode() for i in range(40)]
    assert {m for m, _ in limited} == {"POST"}
    # Another address has a bucket of its own, and pages are never limited.
    assert quick_posts(port, 5, "127.0.0.9") == [200] * 5
    assert all(request(port, "GET", "/", source="127.0.0.8")[0] == 200 for _ in range(30))


def test_post_rate_limit_off_lets_every_post_through(echo_proxy):
    port, seen = echo_proxy(POST_RATE_LIMIT="off")
    assert quick_posts(port, 100, "127.0.0.10") == [200] * 100
    assert not any("X-Survey-Rate-Limited" in h for _, h, _ in seen)


def test_a_bad_rate_is_refused_before_nginx_starts(tmp_path):
    result = subprocess.run([str(ROOT / "proxy" / "run")], env={**os.environ, "POST_RATE_LIMIT": "lots",
                                                                  "PROXY_RUN_DIR": str(tmp_path)},
                            capture_output=True, text=True, timeout=10)
    assert result.returncode == 2 and "POST_RATE_LIMIT" in result.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="only root's nginx hands its workers to nobody")
def test_static_files_in_a_private_checkout_are_served(echo_proxy, tmp_path):
    # tmp_path is 0700 and root's, like a checkout under /root.
    static = tmp_path / "static"
    static.mkdir()
    (static / "style.css").write_text("body {}\n")
    port, _ = echo_proxy(STATIC_ROOT=str(static), PROXY_RUN_DIR=str(tmp_path / "run"))
    status, _, body = request(port, "GET", "/static/style.css")
    assert (status, body) == (200, "body {}\n")


SID = "6ba7b810-9dad-41d1-80b4-00c04fd430c8"


@pytest.fixture
def full_app_socket(tmp_path):
    """A unix socket like gunicorn's whose workers are all busy and whose accept queue is full."""
    path = tmp_path / "app" / "app.sock"
    path.parent.mkdir(mode=0o700)
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    listener.listen(0)
    waiting = []
    while True:
        client = socket.socket(socket.AF_UNIX)
        client.setblocking(False)
        try:
            client.connect(str(path))
        except BlockingIOError:
            client.close()
            break
        waiting.append(client)
    yield path
    for client in waiting:
        client.close()
    listener.close()


@pytest.mark.parametrize("rate_limit", ["off", "1r/m"])
def test_a_post_the_app_has_no_room_for_is_refused_at_once_with_our_page(echo_proxy, full_app_socket, rate_limit):
    # With 1r/m and a burst of 1 the third post takes the rate-limited way to the app, refused as well.
    port, _ = echo_proxy(APP_SOCKET=str(full_app_socket), POST_RATE_LIMIT=rate_limit, POST_RATE_BURST="1")
    for _ in range(3):
        started = time.monotonic()
        status, headers, html = request(port, "POST", "/", post_body("token", SID), FORM_HEADERS)
        assert time.monotonic() - started < 1
        assert (status, headers["Retry-After"]) == (503, "5"), html
        assert "Nothing was stored." in html and "Back button" in html
        assert "/submissions/" not in html
        assert headers["Content-Type"] == "text/html; charset=utf-8"
        assert {k: headers[k] for k in SECURITY_HEADERS} == SECURITY_HEADERS
    # A page is refused as plainly.
    status, _, html = request(port, "GET", "/")
    assert status == 503 and "could not be loaded just now" in html and "was stored" not in html


class Vanishing(http.server.BaseHTTPRequestHandler):
    """An app process that dies with the request read and unanswered."""

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.close_connection = True


def test_a_post_the_app_got_and_never_answered_points_to_its_receipt(echo_proxy, tmp_path):
    path = tmp_path / "app" / "app.sock"
    path.parent.mkdir(mode=0o700)

    class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
        daemon_threads = True

    class Handler(Vanishing):
        def address_string(self):
            return "unix"

    app = Server(str(path), Handler)
    threading.Thread(target=app.serve_forever, daemon=True).start()
    try:
        port, _ = echo_proxy(APP_SOCKET=str(path))
        status, headers, html = request(port, "POST", "/", post_body("token", SID), FORM_HEADERS)
    finally:
        app.shutdown()
    assert status == 503 and "Retry-After" in headers
    assert "may or may not have been stored" in html and "Nothing was stored" not in html
    assert f'<a href="/submissions/{SID}">Your receipt</a>' in html
