"""What a visitor gets when the proxy rate-limits their post, or the queue is
full: the form back with what they typed, a clear message, a status that
says wait, and nothing queued or stored."""

import ipaddress
import re

import pytest
from rq import Queue
from rq.serializers import JSONSerializer

from tests.conftest import hidden_fields
from web import create_app

RATE_LIMITED = {"X-Survey-Rate-Limited": "1"}


@pytest.fixture
def client(env):
    """A client where the proxy stands: the web believes the proxy's headers
    only from FORWARDED_ALLOW_IPS (or its unix socket), and the test client
    connects from 127.0.0.1 (tests/test_https.py checks the others are ignored)."""
    return create_app({"TESTING": True, "FORWARDED_ALLOW_IPS": [ipaddress.ip_network("127.0.0.1/32")]}).test_client()


def queued(redis):
    return Queue("submissions", connection=redis, serializer=JSONSerializer).count


def test_rate_limited_post_gets_its_form_back(post_form, redis, rows, client):
    monitor = redis.monitor()  # every command Redis receives from here on
    with monitor:
        response = client.post("/", data={"name": "Pika the Great", "coat": "tortie", "donut": "maple",
                                          # No CSRF token: the proxy's answer comes first.
                                          "submission_id": "6ba7b810-9dad-41d1-80b4-00c04fd430c8"},
                               headers=RATE_LIMITED)
        redis.ping()  # a marker: nothing but it must reach Redis
        commands = []
        for command in monitor.listen():
            commands.append(command)
            if command["command"] == "PING":
                break
    # Nothing from any connection but the marker's own.
    marker = commands[-1]["client_port"]
    assert [c["command"] for c in commands if c["client_port"] != marker] == []
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "1"
    html = response.get_data(as_text=True)
    assert "Too many posts from your address" in html
    assert 'value="Pika the Great"' in html
    assert re.search(r'<input checked[^>]*value="tortie"', html)
    # A fresh token: sending the kept answers again works.
    hidden = hidden_fields(html)
    assert hidden["csrf_token"] and hidden["submission_id"] == "6ba7b810-9dad-41d1-80b4-00c04fd430c8"
    assert post_form(hidden).status_code == 303
    assert queued(redis) == 1


@pytest.mark.parametrize("path", ["/results", "/results.csv", "/no-such-page"])
def test_rate_limited_header_is_ignored_off_the_form_post(client, path):
    # A post elsewhere gets what it would without the header, not the form.
    def post(**headers):
        return client.post(path, data={"name": "Tom"}, headers=headers).status_code
    assert post(**RATE_LIMITED) == post() in (404, 405)


def test_rate_limited_post_stores_nothing(client, fresh_form, redis, rows, run_worker):
    response = client.post("/", data={**fresh_form(), "name": "Tom", "coat": "grey", "donut": "maple"},
                           headers=RATE_LIMITED)
    assert response.status_code == 429
    run_worker()
    assert queued(redis) == 0 and rows() == []


@pytest.fixture
def small_queue_client(env):
    return create_app({"TESTING": True, "QUEUE_MAX_DEPTH": 3}).test_client()


def test_full_queue_gets_503_with_the_answers_kept(small_queue_client, redis, rows, run_worker):
    client = small_queue_client

    def post(name):
        hidden = hidden_fields(client.get("/").get_data(as_text=True))
        return client.post("/", data={**hidden, "name": name, "coat": "black", "donut": "glazed"}), hidden

    for i in range(3):
        assert post(f"Cat {i}")[0].status_code == 303
    refused, hidden = post("One too many")
    assert refused.status_code == 503
    assert int(refused.headers["Retry-After"]) > 0
    html = refused.get_data(as_text=True)
    assert "taking a lot of answers" in html and 'value="One too many"' in html
    assert queued(redis) == 3
    run_worker()
    assert sorted(r["name"] for r in rows()) == ["Cat 0", "Cat 1", "Cat 2"]
    assert hidden["submission_id"] not in {r["submission_id"] for r in rows()}
    # Drained: the same answers go through now.
    resent = client.post("/", data={**hidden_fields(html), "name": "One too many", "coat": "black", "donut": "glazed"})
    assert resent.status_code == 303
