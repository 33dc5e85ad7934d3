"""A survey with every question type and a conditional question
(tests/surveys.py EVERY_TYPE, served from SURVEYS_DIR at /s/pets) as a person
uses it in a real Chromium: by keyboard alone, at desktop and phone width,
with mistakes, and without script; axe-core finds no serious or critical
accessibility problem on any of its pages."""

import psycopg2
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import DESKTOP, PHONE, axe_violations, screenshot
from tests.browser.test_browser import RECEIPT_URL, focused, no_horizontal_scroll, submission_id
from tests.servers import wait_until

PETS = "/s/pets"
COLUMNS = "has_cat, cat_name, story, colour, toys, happiness, age, weight::text, contact, birthday::text"


def stored(live_env, sid):
    conn = psycopg2.connect(live_env["DATABASE_URL"])
    try:
        with conn.cursor() as cur:
            cur.execute(f"SELECT {COLUMNS} FROM pets WHERE submission_id = %s", (sid,))
            return cur.fetchall()
    finally:
        conn.close()


def tab_to(page, target, most=4):
    """Press Tab until `target` has the focus (a date field takes a Tab per part)."""
    for _ in range(most):
        page.keyboard.press("Tab")
        if focused(page) == target:
            return
    raise AssertionError(f"{target} never took the focus; {focused(page)} has it")


@pytest.mark.parametrize("viewport_name, viewport", [("desktop", DESKTOP), ("phone", PHONE)])
def test_every_type_shows_accessibly_and_the_condition_follows_the_answer(open_page, viewport_name, viewport):
    page = open_page(viewport, path=PETS)
    expect(page).to_have_title("Pet survey")
    # One fieldset and legend per group of choices (the yes/no, the toys, the rating).
    expect(page.locator("form fieldset")).to_have_count(3)
    expect(page.locator("form fieldset > legend")).to_have_count(3)
    expect(page.get_by_role("radiogroup", name="How happy is your pet?").get_by_role("radio")).to_have_count(11)
    expect(page.get_by_label("Favourite colour")).to_have_js_property("tagName", "SELECT")
    expect(page.get_by_label("A story about your pet")).to_have_js_property("tagName", "TEXTAREA")
    # The condition: no cat picked, no cat's name asked.
    cat_name = page.locator("#cat_name-question")
    expect(cat_name).to_be_hidden()
    assert axe_violations(page) == []
    no_horizontal_scroll(page)
    screenshot(page, f"any-survey-{viewport_name}")

    page.get_by_label("Yes").check()
    expect(cat_name).to_be_visible()
    # The script hides the no-script note: the question showing says it applies.
    expect(page.locator("#cat_name-when")).to_be_hidden()
    assert axe_violations(page) == []
    page.get_by_label("No", exact=True).check()
    expect(cat_name).to_be_hidden()


def test_every_type_answered_by_keyboard_alone_is_stored_typed(open_page, start_worker, live_env):
    page = open_page(path=PETS)
    tab_to(page, "has_cat-0")
    page.keyboard.press("Space")                  # Yes: the cat's name appears...
    tab_to(page, "cat_name", most=1)              # ...as the next stop
    page.keyboard.type("Tom")
    tab_to(page, "story", most=1)
    page.keyboard.type("Line one")
    page.keyboard.press("Enter")                  # a new line, not a post, in a long text
    page.keyboard.type("line two")
    tab_to(page, "colour", most=1)
    page.keyboard.press("b")                      # a select picks by its first letter: Blue
    tab_to(page, "toys-0", most=1)
    page.keyboard.press("Space")                  # Ball
    tab_to(page, "toys-1", most=1)                # each checkbox is a stop of its own
    page.keyboard.press("Space")                  # Mouse
    tab_to(page, "happiness-0", most=2)
    for _ in range(9):
        page.keyboard.press("ArrowRight")         # arrows move along the rating: 9
    assert focused(page) == "happiness-9"
    tab_to(page, "age", most=1)
    page.keyboard.type("3")
    tab_to(page, "weight", most=1)
    page.keyboard.type("4.25")
    tab_to(page, "contact", most=1)
    page.keyboard.type("owner@example.org")
    tab_to(page, "birthday", most=1)
    page.keyboard.type("05012023")                # month, day, year: the order this Chromium shows
    expect(page.locator("#birthday")).to_have_value("2023-05-01")
    tab_to(page, "BUTTON:Send my answers")
    page.keyboard.press("Enter")

    expect(page).to_have_url(RECEIPT_URL)
    expect(page).to_have_title("Thank you – Pet survey")
    sid = submission_id(page)
    assert axe_violations(page) == []
    start_worker()
    expect(page.locator("#state")).to_have_attribute("data-state", "stored", timeout=30_000)
    # The poll that finds it stored brings the stored answers (web/static/receipt.js).
    expect(page.locator("dl.summary")).to_contain_text("Tom")
    [row] = stored(live_env, sid)
    assert row[:2] == ("yes", "Tom") and row[2].splitlines() == ["Line one", "line two"]
    assert row[3:] == ("blue", ["ball", "mouse"], 9, 3, "4.25", "owner@example.org", "2023-05-01")
    assert axe_violations(page) == []
    screenshot(page, "any-survey-receipt")

    page.goto(PETS + "/results")
    expect(page).to_have_title("Results – Pet survey")
    assert axe_violations(page) == []
    screenshot(page, "any-survey-results")


@pytest.mark.parametrize("viewport_name, viewport", [("desktop", DESKTOP), ("phone", PHONE)])
def test_each_types_error_is_tied_to_its_field_and_the_first_takes_focus(open_page, viewport_name, viewport):
    page = open_page(viewport, path=PETS)
    page.get_by_label("Yes").check()
    page.get_by_label("Your cat's name").fill("Tom")
    page.get_by_label("Age in years").fill("3.5")
    page.get_by_label("Your email").fill("not an address")
    page.get_by_label("Birthday").fill("1999-12-31")
    page.get_by_role("button", name="Send my answers").click()

    expect(page).to_have_title("Check your answers – Pet survey")
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("Please check your answers.")
    messages = {
        "colour": "Please pick a favourite colour.",
        "toys": "Please pick at least 1 for “Toys”.",
        "happiness": "Please choose a rating for “How happy is your pet?”.",
        "age": "“Age in years” must be a whole number.",
        "contact": "“Your email” must be an email address, such as name@example.org.",
        "birthday": "“Birthday” must be on or after 2000-01-01.",
    }
    expect(alert.get_by_role("listitem")).to_have_count(len(messages))
    for qid, message in messages.items():
        expect(page.locator(f"#{qid}-error")).to_have_text(message)
    # The first in the form's order takes the focus; each field names its message.
    expect(page.get_by_label("Favourite colour")).to_be_focused()
    for qid in messages:
        expect(page.locator(f"#{qid}")).to_have_attribute("aria-invalid", "true")
    for group in ("toys", "happiness"):
        expect(page.locator(f"#{group}-0")).to_have_attribute("aria-describedby", f"{group}-error")
    # What was typed and picked stays; the answers that were right are not marked.
    expect(page.get_by_label("Your cat's name")).to_have_value("Tom")
    expect(page.get_by_label("Age in years")).to_have_value("3.5")
    expect(page.get_by_label("Your email")).to_have_value("not an address")
    expect(page.get_by_label("Yes")).to_be_checked()
    expect(page.locator("#cat_name-question")).to_be_visible()
    expect(page.get_by_label("Your cat's name")).not_to_have_attribute("aria-invalid", "true")
    assert axe_violations(page) == []
    no_horizontal_scroll(page)
    screenshot(page, f"any-survey-errors-{viewport_name}")


def test_without_script_every_question_shows_with_its_note_and_the_server_decides(chromium, live_server,
                                                                                 start_worker, live_env):
    context = chromium.new_context(base_url=live_server, java_script_enabled=False, viewport=DESKTOP)
    try:
        page = context.new_page()
        page.goto(PETS)
        expect(page.locator("#cat_name-question")).to_be_visible()
        expect(page.locator("#cat_name-when")).to_have_text(
            "Only if your answer to “Do you have a cat?” is “Yes”; otherwise leave it.")
        expect(page.get_by_label("Your cat's name")).to_have_attribute("aria-describedby", "cat_name-when")
        # No cat, but a name typed anyway: the form goes through and the name is dropped.
        page.get_by_label("No", exact=True).check()
        page.get_by_label("Your cat's name").fill("Ghost")
        page.get_by_label("Favourite colour").select_option("red")
        page.get_by_label("String").check()
        page.get_by_label("5", exact=True).check()
        page.get_by_label("Age in years").fill("12")
        page.get_by_label("Birthday").fill("2014-03-09")
        page.get_by_role("button", name="Send my answers").click()
        expect(page).to_have_url(RECEIPT_URL)
        sid = submission_id(page)
    finally:
        context.close()
    start_worker()
    wait_until(lambda: stored(live_env, sid), 30, "the no-script answer to be stored")
    assert stored(live_env, sid) == [("no", None, None, "red", ["string"], 5, 12, None, None, "2014-03-09")]
