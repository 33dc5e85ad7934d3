"""Bad input of every kind: a clear 4xx message, nothing queued, nothing
stored.  And what is accepted is stored exactly as typed (trimmed), however
odd: markup and SQL are just text."""

import uuid
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rq import Queue
from rq.serializers import JSONSerializer

from tests.surveys import COATS, DONUTS
from web.forms import NAME_MAX

VALID = {"name": "Pika", "coat": "tortie", "donut": "strawberry"}
FORM = "application/x-www-form-urlencoded"


def queued(redis):
    return Queue("submissions", connection=redis, serializer=JSONSerializer).count


@pytest.fixture
def post_raw(client, fresh_form):
    """POST a body exactly as given, with a valid CSRF token and submission id unless overridden."""
    def post(body=None, content_type=FORM, **fields):
        if body is None:
            body = urlencode({**fresh_form(), **VALID, **fields}).encode()
        return client.post("/", data=body, content_type=content_type)
    return post


def multipart(fields, boundary="survey-boundary"):
    parts = [b"--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n"
             % (boundary.encode(), name.encode(), value if isinstance(value, bytes) else value.encode())
             for name, value in fields.items()]
    return b"".join(parts) + b"--%s--\r\n" % boundary.encode(), f"multipart/form-data; boundary={boundary}"


@pytest.fixture
def assert_nothing_kept(redis, rows, run_worker):
    """Nothing queued, and nothing stored even once the worker has run: a
    post that slipped into the queue would otherwise go unseen here."""
    def check():
        assert queued(redis) == 0
        run_worker()
        assert rows() == []
    return check


@pytest.mark.parametrize("fields, message", [
    ({"name": "\u00a0\u2003"}, "Please tell us your cat&#39;s name."),           # Unicode spaces only
    ({"name": "\u200b\u200b"}, "Please tell us your cat&#39;s name."),           # zero-width only
    ({"name": "\U0001f431" * (NAME_MAX + 1)}, f"The name must be 1 to {NAME_MAX} characters long."),
    ({"name": "Pika\x07"}, "can&#39;t contain control characters"),
    ({"name": "Pi\x1b[31mka"}, "can&#39;t contain control characters"),
    ({"name": "Pi\u2028ka"}, "can&#39;t contain control characters"),            # line separator
    ({"name": "Pi\u202eakP"}, "can&#39;t contain control characters"),           # right-to-left override
    ({"name": "Pi\x85ka"}, "can&#39;t contain control characters"),              # C1 next line
    ({"coat": "Tortie"}, "Please pick a coat from the list."),                    # choices are exact
    ({"coat": "tortie "}, "Please pick a coat from the list."),
    ({"donut": "glazed' OR '1'='1"}, "Please pick a donut from the list."),
    ({"submission_id": "6ba7b810-9dad-11d1-80b4-00c04fd430c8"}, "missing its submission id"),  # a v1 UUID
])
def test_bad_values_are_rejected_with_a_message(post_form, redis, rows, fields, message, assert_nothing_kept):
    response = post_form(**fields)
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert_nothing_kept()


def test_missing_fields_all_get_a_message(post_raw, fresh_form, redis, rows, assert_nothing_kept):
    response = post_raw(urlencode(fresh_form()).encode())
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    for message in ("Please tell us your cat&#39;s name.", "Please pick a coat.", "Please pick a donut."):
        assert message in html
    assert_nothing_kept()


@pytest.mark.parametrize("how", ["percent-encoded", "raw bytes"])
def test_invalid_utf8_is_a_400(post_raw, fresh_form, redis, rows, how, assert_nothing_kept):
    hidden = urlencode(fresh_form())
    name = b"Pi%FF%FEka" if how == "percent-encoded" else b"Pi\xff\xfeka"
    response = post_raw(hidden.encode() + b"&name=" + name + b"&coat=tortie&donut=glazed")
    assert response.status_code == 400
    assert "not valid UTF-8" in response.get_data(as_text=True)
    assert_nothing_kept()


def test_invalid_utf8_in_a_multipart_form_is_rejected(post_raw, fresh_form, redis, rows, assert_nothing_kept):
    body, content_type = multipart({**fresh_form(), "name": b"Pi\xffka", "coat": "tortie", "donut": "glazed"})
    response = post_raw(body, content_type)
    assert response.status_code == 422
    assert "could not be read" in response.get_data(as_text=True)
    assert_nothing_kept()


def test_a_multipart_form_is_accepted(post_raw, fresh_form, redis):
    body, content_type = multipart({**fresh_form(), **VALID})
    assert post_raw(body, content_type).status_code == 303
    assert queued(redis) == 1


@pytest.mark.parametrize("content_type", ["application/json", "text/plain", "application/xml", ""])
def test_wrong_content_type_is_415(client, fresh_form, redis, rows, content_type, assert_nothing_kept):
    # 415, not 400: the body may be fine, but in a format the form does not take.
    body = urlencode({**fresh_form(), **VALID}).encode()
    response = client.post("/", data=body, content_type=content_type)
    assert response.status_code == 415
    html = response.get_data(as_text=True)
    assert "application/x-www-form-urlencoded" in html
    assert "expired" not in html  # not blamed on the CSRF token
    assert_nothing_kept()


def test_json_body_is_415(client, fresh_form, redis, rows, assert_nothing_kept):
    assert client.post("/", json={**fresh_form(), **VALID}).status_code == 415
    assert_nothing_kept()


def test_body_over_the_limit_is_413_whatever_its_type(post_raw, fresh_form, redis, rows, assert_nothing_kept):
    big = urlencode({**fresh_form(), **VALID, "padding": "x" * 20000}).encode()
    assert post_raw(big).status_code == 413
    body, content_type = multipart({**fresh_form(), **VALID, "padding": "x" * 20000})
    response = post_raw(body, content_type)
    assert response.status_code == 413
    assert "too much" in response.get_data(as_text=True)
    assert_nothing_kept()


@pytest.mark.parametrize("token", [None, "", "forged", "x" * 5000])
def test_missing_or_wrong_csrf_token_is_400(post_form, fresh_form, redis, rows, token, assert_nothing_kept):
    hidden = {**fresh_form(), "csrf_token": token}
    response = post_form(hidden)
    assert response.status_code == 400
    assert "This form expired" in response.get_data(as_text=True)
    assert_nothing_kept()


def test_markup_in_the_name_is_stored_literally_and_shown_escaped(client, post_form, fresh_form, run_worker, rows):
    name = '<script>alert("hi")</script>'
    hidden = fresh_form()
    assert post_form(hidden, name=name).status_code == 303
    run_worker()
    assert rows()[0]["name"] == name
    page = client.get(f"/submissions/{hidden['submission_id']}").get_data(as_text=True)
    assert "&lt;script&gt;alert(&#34;hi&#34;)&lt;/script&gt;" in page
    assert "<script>alert" not in page
    # A rejected form shows it back escaped too.
    page = post_form(name=name, coat="zebra").get_data(as_text=True)
    assert "<script>alert" not in page and "&lt;script&gt;" in page


@pytest.mark.parametrize("name", ["Robert'); DROP TABLE cats;--", "%(id)s", "100% \\x00 cat", "O'Malley \"Mal\""])
def test_sql_metacharacters_are_stored_literally(post_form, run_worker, rows, name):
    assert post_form(name=name).status_code == 303
    run_worker()
    assert [r["name"] for r in rows()] == [name]


def test_pages_carry_security_headers(client, post_form):
    for response in (client.get("/"), post_form(coat="zebra"), client.get(f"/submissions/{uuid.uuid4()}")):
        headers = response.headers
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        assert "script-src 'self'" in headers["Content-Security-Policy"]
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["Referrer-Policy"] == "same-origin"
        assert headers["Cache-Control"] == "no-store"
    assert client.get("/healthz").headers["X-Content-Type-Options"] == "nosniff"


# Any text at all, often padded with whitespace; choices mostly valid.
names = st.one_of(
    st.text(max_size=NAME_MAX + 5),
    st.builds(lambda pad, core, end: pad + core + end,
              st.sampled_from(["", " ", "\t", "\u00a0"]), st.text(min_size=1, max_size=NAME_MAX),
              st.sampled_from(["", " ", "\n"])),
)
coats = st.one_of(st.sampled_from([v for v, _ in COATS]), st.text(max_size=10))
donuts = st.one_of(st.sampled_from([v for v, _ in DONUTS]), st.text(max_size=10))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=names, coat=coats, donut=donuts)
def test_any_input_is_cleanly_rejected_or_stored_as_trimmed(
        client, fresh_form, redis, rows, run_worker, name, coat, donut):
    redis.flushall()
    before = {r["submission_id"] for r in rows()}
    hidden = fresh_form()
    # (st.text() makes no lone surrogates, which could not be sent at all.)
    body = urlencode({**hidden, "name": name, "coat": coat, "donut": donut}).encode()
    response = client.post("/", data=body, content_type=FORM)
    if response.status_code == 303:
        run_worker()
        new = [r for r in rows() if r["submission_id"] not in before]
        assert [(r["name"], r["coat"], r["donut"], r["submission_id"]) for r in new] == \
            [(name.strip(), coat, donut, hidden["submission_id"])]
    else:
        assert response.status_code in (400, 413, 422)
        html = response.get_data(as_text=True)
        assert 'class="error"' in html or 'role="alert"' in html or "<h1>" in html
        assert "Traceback" not in html
        # Nothing queued is the proof here: running the worker on every
        # rejected example (about a second each) is left to the cases above.
        assert queued(redis) == 0
        assert {r["submission_id"] for r in rows()} == before
