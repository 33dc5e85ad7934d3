"""The survey as a person uses it, in a real Chromium against the real gunicorn
and worker: mouse, keyboard, mistakes, the receipt, history, a phone; and axe-core
finds no serious or critical accessibility problem on any page."""

import re
import uuid

import psycopg2
import pytest
from playwright.sync_api import expect
from redis import Redis
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from tests.browser.conftest import PHONE, axe_violations, screenshot
from tests.surveys import COATS

RECEIPT_URL = re.compile(r"/submissions/([0-9a-f-]{36})$")


def cat_name(prefix):
    # Unique per test: the live database is shared by the whole session.
    return f"{prefix} {uuid.uuid4().hex[:6]}"


def submission_id(page):
    match = RECEIPT_URL.search(page.url)
    assert match, page.url
    return match.group(1)


def focused(page):
    """What has the keyboard focus: its id, or its tag and text."""
    return page.evaluate("(() => { const e = document.activeElement;"
                         " return e.id || (e.tagName + ':' + e.textContent.trim()); })()")


def no_horizontal_scroll(page):
    widths = page.evaluate("({scroll: document.documentElement.scrollWidth, view: window.innerWidth})")
    assert widths["scroll"] <= widths["view"], widths


def send(page, name, coat, donut):
    """Fill in the form by its labels and send it, as a visitor would."""
    page.get_by_label("Your cat's name").fill(name)
    page.get_by_text(coat).click()
    page.get_by_text(donut).click()
    page.get_by_role("button", name="Send my answers").click()


def test_fill_and_submit_with_the_mouse(open_page):
    page = open_page()
    expect(page).to_have_title("Cat survey")
    assert axe_violations(page) == []
    screenshot(page, "form-desktop")

    name = cat_name("Pika")
    page.get_by_label("Your cat's name").click()
    page.keyboard.type(name)
    page.get_by_text("Tortoiseshell").click()
    page.get_by_text("Strawberry frosted").click()
    expect(page.get_by_label("Tortoiseshell")).to_be_checked()
    page.get_by_role("button", name="Send my answers").click()

    expect(page).to_have_url(RECEIPT_URL)
    expect(page).to_have_title("Thank you – Cat survey")
    expect(page.locator("#state")).to_have_attribute("data-state", "queued")
    expect(page.get_by_role("status")).to_have_text("Received, waiting in the queue")
    expect(page.locator("#submission-id")).to_have_text(submission_id(page))


def test_the_honeypot_is_hidden_from_people(open_page):
    """HONEYPOT_FIELD (default `website`) is in the form for robots only: no
    box, no tab stop (the test below walks the tab order), nothing a screen
    reader announces, nothing the browser fills in; axe passes with it."""
    page = open_page()
    trap = page.locator("form input[name=website]")
    expect(trap).to_have_count(1)
    expect(trap).to_be_hidden()
    expect(page.get_by_text("Leave this empty")).to_be_hidden()
    assert trap.get_attribute("autocomplete") == "off" and trap.get_attribute("tabindex") == "-1"
    # The accessibility tree a screen reader reads: the questions, not the trap.
    tree = page.locator("form").aria_snapshot()
    assert "Your cat's name" in tree and "Leave this empty" not in tree and "website" not in tree
    assert axe_violations(page) == []


def test_choices_show_the_survey_files_pictures(open_page):
    page = open_page()
    pictures = page.locator("form label img.swatch")
    expect(pictures).to_have_count(16)
    # Each one loaded (an SVG from /survey/pictures/...) and is decoration: the label's words carry it.
    loaded = pictures.evaluate_all("imgs => imgs.map(i => [i.complete && i.naturalWidth > 0, i.alt])")
    assert loaded == [[True, ""]] * 16
    expect(page.get_by_role("radio", name="Tortoiseshell")).to_have_count(1)


def test_keyboard_only_tab_order_and_enter_submits(open_page):
    page = open_page()
    name = cat_name("Mochi")
    order = []
    for _ in range(5):
        page.keyboard.press("Tab")
        order.append(focused(page))
    # Header link, then the questions top to bottom, each radio group one stop, then the button.
    assert order == ["A:Cat survey", "name", "coat-0", "donut-0", "BUTTON:Send my answers"]

    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Shift+Tab")
    assert focused(page) == "name"
    page.keyboard.type(name)
    page.keyboard.press("Tab")
    page.keyboard.press("Space")        # Tabby
    page.keyboard.press("ArrowRight")   # Tortoiseshell: arrows move within the group
    assert focused(page) == "coat-1"
    # The focused tile shows a focus ring, not only a colour change.
    outline = page.evaluate("getComputedStyle(document.activeElement.closest('label')).outlineStyle")
    assert outline != "none"
    page.keyboard.press("Tab")
    page.keyboard.press("Space")        # Glazed
    page.keyboard.press("ArrowDown")    # Strawberry frosted
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Shift+Tab")
    assert focused(page) == "name"
    page.keyboard.press("Enter")        # Enter in a text field submits the form

    expect(page).to_have_url(RECEIPT_URL)
    expect(page.locator("#state")).to_have_attribute("data-state", "queued")


@pytest.mark.parametrize("viewport_name, viewport", [("desktop", None), ("phone", PHONE)])
def test_error_shows_next_to_its_field_takes_focus_and_keeps_typed_values(open_page, viewport_name, viewport):
    page = open_page(viewport) if viewport else open_page()
    page.get_by_label("Your cat's name").fill("Biscuit")
    page.get_by_text("Strawberry frosted").click()
    page.get_by_role("button", name="Send my answers").click()  # no coat picked

    expect(page).to_have_title("Check your answers – Cat survey")
    expect(page.get_by_role("alert")).to_contain_text("Please check your answers.")
    coat = page.locator("fieldset#coat")
    error = coat.locator("#coat-error")
    expect(error).to_have_text("Please pick a coat.")
    expect(coat).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#coat-0")).to_have_attribute("aria-describedby", "coat-error")
    # Next to its field: right above the first choice, not somewhere else on the page.
    gap = page.locator("#coat-0").bounding_box()["y"] - error.bounding_box()["y"]
    assert 0 < gap < 80, gap
    # autofocus applies at the next rendering step after load: wait for it, briefly.
    expect(page.locator("#coat-0")).to_be_focused()
    # What was typed and picked is still there; the valid fields are not marked.
    expect(page.get_by_label("Your cat's name")).to_have_value("Biscuit")
    expect(page.get_by_label("Strawberry frosted")).to_be_checked()
    expect(page.get_by_label("Your cat's name")).not_to_have_attribute("aria-invalid", "true")
    expect(page.locator("fieldset#donut")).not_to_have_attribute("aria-invalid", "true")

    assert axe_violations(page) == []
    no_horizontal_scroll(page)
    screenshot(page, f"error-{viewport_name}")

    # Fix it from the keyboard: the focus is already in the coat group.
    page.keyboard.press("Space")
    page.keyboard.press("Enter")
    expect(page).to_have_url(RECEIPT_URL)


def test_first_of_several_errors_takes_focus(open_page):
    page = open_page()
    page.get_by_role("button", name="Send my answers").click()  # nothing filled in
    expect(page.get_by_role("alert").get_by_role("listitem")).to_have_count(3)
    name = page.get_by_label("Your cat's name")
    expect(name).to_be_focused()
    expect(name).to_have_attribute("aria-invalid", "true")
    expect(name).to_have_attribute("aria-describedby", "name-hint name-error")
    expect(page.locator("#name-error")).to_have_text(re.compile("Please tell us your cat's name."))
    assert axe_violations(page) == []


def test_receipt_turns_from_queued_to_stored_by_itself(open_page, start_worker, stored_rows):
    page = open_page()
    name = cat_name("Tofu")
    send(page, name, "Calico", "Maple")

    state = page.locator("#state")
    expect(state).to_have_attribute("data-state", "queued")
    sid = submission_id(page)
    assert stored_rows(sid) == []
    assert axe_violations(page) == []
    screenshot(page, "receipt-queued-desktop")

    page.evaluate("window.sameDocument = true")  # gone if the page reloads
    start_worker()
    # No reload from the test: the page polls and shows the change itself.
    expect(state).to_have_attribute("data-state", "stored", timeout=30_000)
    expect(state).to_have_text("Stored")
    expect(page.locator(".summary")).to_have_text(f"{name}: Calico coat, Maple donut.")
    # Nor from the page: the poll brought the stored receipt.
    assert page.evaluate("window.sameDocument") is True
    expect(page.locator("p.lead")).to_have_text("We have your answers.")
    assert stored_rows(sid) == [(name, "calico", "maple", sid)]
    assert axe_violations(page) == []
    screenshot(page, "receipt-desktop")


def test_erase_my_answer_from_the_receipt(open_page, start_worker, stored_rows):
    page = open_page()
    name = cat_name("Mochi")
    send(page, name, "Black", "Glazed")
    sid = submission_id(page)
    start_worker()
    state = page.locator("#state")
    expect(state).to_have_attribute("data-state", "stored", timeout=30_000)
    assert len(stored_rows(sid)) == 1

    page.get_by_role("button", name="Erase my answer").click()
    # Queued, then erased by the worker; the page follows it by itself.
    expect(state).to_have_attribute("data-state", "erased", timeout=30_000)
    expect(state).to_have_text("Erased")
    expect(page.get_by_role("button", name="Erase my answer")).to_have_count(0)
    expect(page.locator(".summary")).to_have_count(0)
    assert stored_rows(sid) == []
    assert name not in page.content()
    assert axe_violations(page) == []
    screenshot(page, "receipt-erased-desktop")


def test_back_and_refresh_after_submitting_store_one_row(open_page, start_worker, stored_rows):
    page = open_page()
    posts = []
    page.on("request", lambda request: posts.append(request.url) if request.method == "POST" else None)
    name = cat_name("Ziggy")
    send(page, name, "Tuxedo", "Sprinkles")
    expect(page).to_have_url(RECEIPT_URL)
    sid = submission_id(page)

    page.reload()
    expect(page).to_have_url(RECEIPT_URL)
    page.go_back()
    expect(page).to_have_title("Cat survey")
    page.reload()
    page.go_forward()
    expect(page).to_have_url(re.compile(sid))
    page.reload()

    start_worker()
    expect(page.locator("#state")).to_have_attribute("data-state", "stored", timeout=30_000)
    assert len(posts) == 1, posts
    assert stored_rows(name=name) == [(name, "tuxedo", "sprinkles", sid)]


def test_phone_viewport_has_no_horizontal_scrolling(open_page, start_worker):
    page = open_page(PHONE)
    no_horizontal_scroll(page)
    assert axe_violations(page) == []
    screenshot(page, "form-phone")

    send(page, "Princess Fluffington of the Long Windowsill", "Ginger", "Boston cream")
    expect(page.locator("#state")).to_have_attribute("data-state", "queued")
    no_horizontal_scroll(page)

    start_worker()
    expect(page.locator("#state")).to_have_attribute("data-state", "stored", timeout=30_000)
    no_horizontal_scroll(page)
    screenshot(page, "receipt-phone")


def test_results_page_shows_the_new_tally(open_page, start_worker):
    def tallies(page):
        page.goto("/results")
        expect(page).to_have_title("Results – Cat survey")
        coat = page.locator('caption:text("By coat") + thead + tbody tr[data-value="white"] td').first
        donut = page.locator('caption:text("By donut") + thead + tbody tr[data-value="jelly"] td').first
        return int(page.locator("#total").get_attribute("data-total")), int(coat.inner_text()), int(donut.inner_text())

    page = open_page()
    before = tallies(page)
    page.goto("/")
    send(page, cat_name("Snowball"), "White", "Jelly-filled")
    start_worker()
    expect(page.locator("#state")).to_have_attribute("data-state", "stored", timeout=30_000)

    assert tallies(page) == (before[0] + 1, before[1] + 1, before[2] + 1)
    assert axe_violations(page) == []
    screenshot(page, "results-desktop")

    phone = open_page(PHONE, path="/results")
    no_horizontal_scroll(phone)
    assert axe_violations(phone) == []
    screenshot(phone, "results-phone")


def test_results_update_by_themselves(open_page, live_env):
    page = open_page(path="/results")
    expect(page).to_have_title("Results – Cat survey")
    expect(page.locator("#live-note")).to_be_visible()
    before = int(page.locator("#total").get_attribute("data-total"))
    page.evaluate("window.sameDocument = true")  # gone if the page reloads

    conn = psycopg2.connect(live_env["DATABASE_URL"])
    with conn, conn.cursor() as cur:
        cur.execute("INSERT INTO cats (submission_id, name, coat, donut, submitted_at) VALUES (%s, %s, 'white', 'jelly', now())",
                    (str(uuid.uuid4()), cat_name("Live")))
    conn.close()

    # No reload from the test: the page asks /results.json and redraws itself.
    expect(page.locator("#total")).to_have_attribute("data-total", str(before + 1))
    expect(page.locator("#total")).to_have_text(str(before + 1))
    assert page.evaluate("window.sameDocument") is True
    white = page.locator('table[data-tally="coat"] tr[data-value="white"]')
    cats = int(white.locator("td").first.inner_text())
    assert cats >= 1
    share = white.locator(".pct").inner_text()
    # The bar is as long as the number says.
    assert white.locator(".bar-fill").get_attribute("width") + "%" == share
    assert axe_violations(page) == []
    screenshot(page, "results-live")


def test_results_are_readable_without_scripts(chromium, live_server):
    context = chromium.new_context(base_url=live_server, java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto("/results")
        expect(page.locator('table[data-tally="coat"] tbody tr')).to_have_count(len(COATS))
        expect(page.locator("#live-note")).to_be_hidden()  # it would promise what cannot happen
        expect(page.locator('table[data-tally="coat"] tbody tr td').first).to_have_text(re.compile(r"^\d+$"))
        expect(page.locator("#total")).to_have_text(re.compile(r"^\d+$"))
        # (axe needs scripts: the same page is checked with them in the test above.)
    finally:
        context.close()


def test_receipt_stops_polling_once_the_job_failed(open_page, live_env):
    page = open_page()
    send(page, cat_name("Doomed"), "Black", "Glazed")
    expect(page).to_have_url(RECEIPT_URL)
    sid = submission_id(page)
    polls = []
    page.on("request", lambda request: polls.append(request.url) if request.url.endswith(".json") else None)

    # Out of retries, as the worker leaves a job that never could be stored.
    connection = Redis.from_url(live_env["REDIS_URL"])
    Job.fetch(sid, connection=connection, serializer=JSONSerializer).set_status(JobStatus.FAILED)
    state = page.locator("#state")
    expect(state).to_have_attribute("data-state", "failed")
    expect(state).to_have_text("Could not be stored yet")
    expect(state).to_have_attribute("data-polling", "stopped")
    asked = len(polls)
    assert asked >= 1
    page.wait_for_timeout(7_000)  # longer than the longest wait between two polls (5 s)
    assert len(polls) == asked, polls
    assert axe_violations(page) == []


def test_receipt_stops_polling_once_the_submission_is_gone(open_page, live_env):
    page = open_page()
    send(page, cat_name("Vanished"), "Black", "Glazed")
    expect(page).to_have_url(RECEIPT_URL)
    sid = submission_id(page)
    connection = Redis.from_url(live_env["REDIS_URL"])
    job = Job.fetch(sid, connection=connection, serializer=JSONSerializer)
    job.delete()  # no job and no row: the JSON answers 404
    state = page.locator("#state")
    expect(state).to_have_attribute("data-state", "missing")
    expect(state).to_have_attribute("data-polling", "stopped")
    assert axe_violations(page) == []


def test_auditor_sign_in_page(open_page):
    page = open_page(path="/results")
    challenges = []

    def as_after_cancel(route):
        # A person's browser shows its login prompt first, and this page when
        # they cancel it; Playwright cancels by failing the navigation, so the
        # real response is shown here without its challenge header.
        response = route.fetch()
        headers = dict(response.headers)
        challenges.append((response.status, headers.pop("www-authenticate", None)))
        route.fulfill(response=response, headers=headers)

    page.route("**/results.csv", as_after_cancel)
    page.get_by_role("link", name=re.compile("Download every answer")).click()
    expect(page).to_have_title("Sign in to see the answers – Cat survey")
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in to see the answers")
    assert challenges == [(401, 'Basic realm="Cat survey auditor", charset="UTF-8"')]
    assert axe_violations(page) == []
    screenshot(page, "auditor-sign-in")
