"""Bad input gets a clear message next to its field, and nothing is queued or stored."""

import re
import uuid

import pytest
from rq import Queue
from rq.serializers import JSONSerializer

from tests.conftest import hidden_fields
from web.forms import NAME_MAX


def queued(redis):
    return Queue("submissions", connection=redis, serializer=JSONSerializer).count


def test_form_renders_fields_and_a_fresh_submission_id(client, fresh_form):
    html = client.get("/").get_data(as_text=True)
    for field in ('name="name"', 'name="coat"', 'name="donut"', 'name="csrf_token"'):
        assert field in html
    first, second = fresh_form()["submission_id"], fresh_form()["submission_id"]
    assert first != second
    assert uuid.UUID(first).version == 4


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"name": None}, "Please tell us your cat&#39;s name."),
        ({"name": ""}, "Please tell us your cat&#39;s name."),
        ({"name": "   \t "}, "Please tell us your cat&#39;s name."),
        ({"name": "x" * (NAME_MAX + 1)}, f"The name must be 1 to {NAME_MAX} characters long."),
        ({"name": "Pi\nka"}, "can&#39;t contain control characters"),
        ({"name": "Pi\x00ka"}, "can&#39;t contain control characters"),
        ({"coat": None}, "Please pick a coat."),
        ({"coat": "zebra"}, "Please pick a coat from the list."),
        ({"donut": None}, "Please pick a donut."),
        ({"donut": "kale"}, "Please pick a donut from the list."),
        ({"submission_id": "not-a-uuid"}, "missing its submission id"),
        ({"submission_id": None}, "missing its submission id"),
    ],
)
def test_invalid_input_is_rejected_with_its_message(post_form, redis, rows, fields, message):
    response = post_form(**fields)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert message in html
    assert queued(redis) == 0
    assert rows() == []


def test_rejected_form_keeps_what_the_visitor_typed(post_form):
    html = post_form(name="Biscuit", coat="zebra").get_data(as_text=True)
    assert 'value="Biscuit"' in html
    assert re.search(r'<input checked [^>]*value="strawberry">', html)
    assert not re.search(r'<input checked [^>]*name="coat"', html)
    assert 'aria-invalid="true"' in html


def test_name_at_the_limit_is_accepted(post_form, redis):
    assert post_form(name="x" * NAME_MAX).status_code == 303
    assert queued(redis) == 1


@pytest.mark.parametrize("token", [None, "", "forged-token"])
def test_missing_or_wrong_csrf_token_is_rejected(post_form, fresh_form, redis, rows, token):
    hidden = fresh_form()
    hidden["csrf_token"] = token
    response = post_form(hidden, name="Sneaky")
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "This form expired" in html
    assert 'value="Sneaky"' in html
    assert queued(redis) == 0
    assert rows() == []


def test_the_expired_form_page_can_be_sent_again(post_form, fresh_form, redis):
    hidden = fresh_form()
    response = post_form({**hidden, "csrf_token": "forged-token"})
    assert response.status_code == 400
    # The page carries a fresh token, so sending the kept answers again works.
    again = hidden_fields(response.get_data(as_text=True))
    assert again["csrf_token"] and again["submission_id"] == hidden["submission_id"]
    assert post_form(again).status_code == 303
    assert queued(redis) == 1


def test_oversized_body_is_413(post_form, redis):
    response = post_form(name="x" * 20000)
    assert response.status_code == 413
    assert queued(redis) == 0
