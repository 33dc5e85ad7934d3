"""More posts than the web can serve: an open load (Poisson arrivals, each on a
new connection, as visitors come) at a multiple of a deliberately small
capacity, one gunicorn worker, through nginx to Redis, the worker and
PostgreSQL.  What cannot be served is refused at once, by our own 503 page
that says nothing was stored, never a long wait, a reset or a bare 502; the
form, on its own listener (APP_FORM_SOCKET), keeps loading for visitors
arriving meanwhile; every 303 is stored exactly once and nothing refused is
stored."""

import asyncio
import concurrent.futures
import collections
import random
import time
import uuid

import pytest

from tests.frontend import FORM_HEADERS, Front, percentile, post_body
from tests.servers import wait_until

MULTIPLE = 3  # the load, as a multiple of what one worker serves
# Visitors loading the form meanwhile, one per this many posts: new visitors
# are a minority of the requests (each also posts and polls its receipt).
POSTS_PER_FORM = 12
LOAD_S = 4
# Generous behavioural bounds, far above what shedding gives (tens of ms) and
# far below what the queue of a saturated worker gives (seconds, then 30 s).
ANSWER_WITHIN_S = 3
CLIENT_TIMEOUT_S = 10


@pytest.fixture(scope="module")
def front(pg_server, tmp_path_factory):
    front = Front(pg_server, tmp_path_factory.mktemp("overwhelmed"), WEB_CONCURRENCY="1", POST_RATE_LIMIT="off")
    try:
        yield front.start()
    finally:
        front.destroy()


async def exchange(port, raw, timeout=CLIENT_TIMEOUT_S):
    """One request on a new connection: (status or the error's name, seconds, body)."""
    started = time.perf_counter()
    writer = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(raw)
            response = await reader.read(-1)
        head, _, body = response.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/1.") else "no answer"
    except TimeoutError:
        status, body = "timeout", b""
    except OSError as exc:
        status, body = type(exc).__name__, b""
    finally:
        if writer:
            writer.close()
    return status, time.perf_counter() - started, body.decode(errors="replace")


def raw_request(method, path, headers, body=""):
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close",
             *(f"{k}: {v}" for k, v in headers.items())]
    if body:
        lines.append(f"Content-Length: {len(body.encode())}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


async def open_load(port, post_rate, form_rate, seconds, cookie, token):
    """Posts and GET / arriving independently at their rates a second for
    `seconds`: ([(status, seconds, submission id, body)] for the posts,
    [(status, seconds)] for the forms)."""
    headers = {**FORM_HEADERS, "Cookie": cookie}
    form = raw_request("GET", "/", {})
    rng = random.Random(17)
    posts, forms = [], []

    async def post():
        sid = str(uuid.uuid4())
        status, took, body = await exchange(port, raw_request("POST", "/", headers, post_body(token, sid)))
        posts.append((status, took, sid, body))

    async def get():
        status, took, _ = await exchange(port, form)
        forms.append((status, took))

    def arrivals(rate, what):
        due = 0.0
        while rate and due < seconds:
            due += rng.expovariate(rate)
            yield due, what

    schedule = sorted([*arrivals(post_rate, post), *arrivals(form_rate, get)], key=lambda a: a[0])
    tasks = []
    start = time.perf_counter()
    for due, what in schedule:
        await asyncio.sleep(max(0.0, start + due - time.perf_counter()))
        tasks.append(asyncio.create_task(what()))
    await asyncio.gather(*tasks)
    return posts, forms


def in_own_loop(coroutine):
    """asyncio.run in a thread of its own: in a whole `make test` run the
    browser tests' Playwright (its sync API) keeps an event loop running in
    the main thread, where asyncio.run refuses to start another."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def capacity(front, cookie, token):
    """Posts a second the one worker serves, eight clients posting back to back for 2 s."""
    headers = {**FORM_HEADERS, "Cookie": cookie}

    async def client(deadline, done):
        while time.perf_counter() < deadline:
            status, _, _ = await exchange(front.port, raw_request("POST", "/", headers,
                                                                  post_body(token, str(uuid.uuid4()))))
            done.append(status)

    async def run():
        done = []
        deadline = time.perf_counter() + 2
        await asyncio.gather(*(client(deadline, done) for _ in range(8)))
        return done

    done = in_own_loop(run())
    assert set(done) == {303}, collections.Counter(done)
    return len(done) / 2


def test_overload_is_refused_at_once_and_nothing_is_lost_or_doubled(front, capsys):
    cookie, token = front.form()
    served = capacity(front, cookie, token)
    rate = MULTIPLE * served
    posts, forms = in_own_loop(open_load(front.port, rate, rate / POSTS_PER_FORM, LOAD_S, cookie, token))

    statuses = collections.Counter(status for status, _, _, _ in posts)
    post_times = [took for _, took, _, _ in posts]
    admitted_times = [took for status, took, _, _ in posts if status == 303]
    form_statuses = collections.Counter(status for status, _ in forms)
    form_times = [took for _, took in forms]
    with capsys.disabled():
        print(f"\none worker serves {served:.0f} posts/s; {rate:.0f} posts/s and {rate / POSTS_PER_FORM:.0f} GET / for {LOAD_S} s: "
              f"posts {dict(statuses)}, p50 {percentile(post_times, 50) * 1000:.0f} ms, "
              f"p99 {percentile(post_times, 99) * 1000:.0f} ms, max {max(post_times) * 1000:.0f} ms; "
              f"303s p99 {percentile(admitted_times, 99) * 1000 if admitted_times else 0:.0f} ms; "
              f"forms {dict(form_statuses)}, p99 {percentile(form_times, 99) * 1000:.0f} ms")

    # Every post answered, and answered with a verdict: never a reset, a
    # timeout, a 502 or 504, nor a long wait.
    assert set(statuses) <= {303, 429, 503}, statuses
    assert max(post_times) < ANSWER_WITHIN_S, sorted(post_times)[-10:]
    # Every visitor who came meanwhile got the form: it waits behind about
    # one post, not behind the posts' queue, whose excess is refused.
    assert forms and set(form_statuses) == {200}, form_statuses
    assert max(form_times) < ANSWER_WITHIN_S, sorted(form_times)[-10:]
    # The load really was too much, and what was refused says so plainly.
    refused = [(sid, body) for status, _, sid, body in posts if status == 503]
    assert refused and statuses[303], statuses
    assert all("Nothing was stored" in body or "Nothing was saved" in body for _, body in refused), refused[0][1]

    # Every 303 stored, exactly once (submission_id is the key); nothing refused stored.
    accepted = {sid for status, _, sid, _ in posts if status == 303}
    ours = accepted | {sid for sid, _ in refused}
    wait_until(lambda: set(front.stored_ids()) & ours == accepted, 60, "every accepted post stored", interval=0.5)
    assert front.count("SELECT count(*) FROM cats WHERE submission_id::text = ANY(%s)", (list(ours),)) == len(accepted)


def test_a_flood_of_form_loads_leaves_posts_their_turn(front, capsys):
    """The form is served first (web/workers.py), but not only: posts of
    visitors who have the form keep being taken while GET / floods in."""
    cookie, token = front.form()
    served = capacity(front, cookie, token)
    # Forms cost about as much as posts: this is a multiple of what one worker serves.
    form_rate, post_rate = MULTIPLE * served, served / 8
    posts, forms = in_own_loop(open_load(front.port, post_rate, form_rate, LOAD_S, cookie, token))

    statuses = collections.Counter(status for status, _, _, _ in posts)
    post_times = [took for _, took, _, _ in posts]
    form_statuses = collections.Counter(status for status, _ in forms)
    with capsys.disabled():
        print(f"\none worker serves {served:.0f} posts/s; {form_rate:.0f} GET / and {post_rate:.0f} posts/s "
              f"for {LOAD_S} s: forms {dict(form_statuses)}; posts {dict(statuses)}, "
              f"p99 {percentile(post_times, 99) * 1000:.0f} ms, max {max(post_times) * 1000:.0f} ms")

    # The flood was more than the worker serves...
    assert form_statuses[503], form_statuses
    # ...and every post was still taken, promptly: served first without end,
    # the forms would keep the posts waiting until the flood is over.
    assert set(statuses) == {303}, statuses
    assert max(post_times) < 1, sorted(post_times)[-10:]
    accepted = {sid for _, _, sid, _ in posts}
    wait_until(lambda: accepted <= set(front.stored_ids()), 60, "every accepted post stored", interval=0.5)
    assert front.count("SELECT count(*) FROM cats WHERE submission_id::text = ANY(%s)", (list(accepted),)) == len(accepted)
