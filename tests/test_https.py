"""Behind the one trusted proxy: the client's address and scheme come from
its X-Forwarded-* headers, so over HTTPS the session cookie is Secure, HSTS
is sent and Flask-WTF's referrer check applies."""

import pytest
from flask import request

from tests.conftest import hidden_fields
from web import create_app
from web.config import forwarded_allow_ips
from web.metrics import REGISTRY

VIA_HTTPS = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "survey.example", "X-Forwarded-For": "203.0.113.5"}
ANSWERS = {"name": "Pika", "coat": "tortie", "donut": "glazed"}


@pytest.fixture
def app(env):
    # The test client connects from 127.0.0.1: here, as the proxy's address.
    return create_app({"TESTING": True, "FORWARDED_ALLOW_IPS": forwarded_allow_ips("127.0.0.1")})


def whoami_client(app):
    @app.get("/_whoami")
    def whoami():
        return {"secure": request.is_secure, "addr": request.remote_addr, "host": request.host,
                "rate_limited": request.headers.get("X-Survey-Rate-Limited")}

    return app.test_client()


def test_the_proxy_says_https_and_who_the_client_is(app):
    client = whoami_client(app)
    assert client.get("/_whoami", headers=VIA_HTTPS).get_json() == \
        {"secure": True, "addr": "203.0.113.5", "host": "survey.example", "rate_limited": None}
    # One hop only: what the client put in front of the proxy's value is ignored.
    spoofed = {**VIA_HTTPS, "X-Forwarded-For": "10.9.9.9, 203.0.113.5", "X-Forwarded-Proto": "http, https"}
    assert client.get("/_whoami", headers=spoofed).get_json()["addr"] == "203.0.113.5"
    assert client.get("/_whoami").get_json() == \
        {"secure": False, "addr": "127.0.0.1", "host": "localhost", "rate_limited": None}


@pytest.mark.parametrize("allowed", ["", "10.0.0.0/8,::1"])
def test_no_one_else_may_say_who_the_client_is(env, allowed):
    client = whoami_client(create_app({"TESTING": True, "FORWARDED_ALLOW_IPS": forwarded_allow_ips(allowed)}))
    answer = client.get("/_whoami", headers={**VIA_HTTPS, "X-Survey-Rate-Limited": "1"}).get_json()
    assert answer == {"secure": False, "addr": "127.0.0.1", "host": "localhost", "rate_limited": None}


def test_over_https_the_cookie_is_secure_and_hsts_is_sent(client):
    page = client.get("/", headers=VIA_HTTPS)
    assert "; Secure" in page.headers["Set-Cookie"]
    assert page.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    plain = client.application.test_client().get("/")
    assert "Secure" not in plain.headers["Set-Cookie"]
    assert "Strict-Transport-Security" not in plain.headers


def test_https_setting_makes_every_cookie_secure(env):
    client = create_app({"TESTING": True, "HTTPS": True}).test_client()
    page = client.get("/")
    assert "; Secure" in page.headers["Set-Cookie"]
    assert page.headers["Strict-Transport-Security"].startswith("max-age=31536000")


def rejected(reason):
    return REGISTRY.get_sample_value("survey_submissions_rejected_total",
                                     {"field": "csrf_token", "reason": reason, "survey": "cats"}) or 0


def test_flask_wtf_checks_the_referrer_over_https(client):
    # The app itself is reached over plain HTTP, as from the proxy; only the headers say https.
    hidden = hidden_fields(client.get("/", headers=VIA_HTTPS).get_data(as_text=True))
    cookie = client.get_cookie("session", domain="localhost")
    assert cookie is not None and cookie.secure

    def post(referrer=None):
        headers = dict(VIA_HTTPS)
        if referrer:
            headers["Referer"] = referrer
        return client.post("/", data={**hidden, **ANSWERS}, headers=headers)

    def refused_for(referrer):
        before = {reason: rejected(reason) for reason in ("no_referrer", "bad_referrer")}
        response = post(referrer)
        assert response.status_code == 400 and "This form expired" in response.get_data(as_text=True)
        return [reason for reason, count in before.items() if rejected(reason) == count + 1]

    assert refused_for(None) == ["no_referrer"]
    assert refused_for("https://evil.example/") == ["bad_referrer"]
    assert refused_for("http://survey.example/") == ["bad_referrer"]  # a downgrade is another origin
    assert post("https://survey.example/").status_code == 303
