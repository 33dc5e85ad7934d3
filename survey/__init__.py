"""The survey an owner runs, read from a TOML file (SURVEY_FILE).

Both images copy this package: the web builds its form from the file, and the
worker checks it at start, so a broken file stops every service before any
of them serves.  A broken file is refused whole, with one line naming the
file, the key and what is wrong: SurveyFileError's message.

`python -m survey check FILE` checks a file offline."""

import re
import tomllib
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

DEFAULT_FILE = Path(__file__).with_name("cats.toml")

# A value is what the table stores (db/schema.sql allows 1 to 32 characters)
# and what a URL and a CSS class may carry.
VALUE = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}\Z")
LABEL_MAX = 60
TEXT_MAX = 300
PICTURE_TYPES = {".svg": "image/svg+xml", ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
                 ".gif": "image/gif", ".webp": "image/webp"}

TOP_KEYS = {"title", "heading", "introduction", "opens_at", "closes_at", "max_responses", "name", "coat", "donut"}
QUESTION_KEYS = {"label", "hint"}
CHOICE_QUESTION_KEYS = QUESTION_KEYS | {"choices"}
CHOICE_KEYS = {"value", "label", "picture"}
CHOICE_QUESTIONS = ("coat", "donut")


class SurveyFileError(ValueError):
    """The file cannot be the survey; the message is one line: file, key, problem."""

    def __init__(self, path, key, problem):
        super().__init__(f"{path}: {key}: {problem}")


@dataclass(frozen=True)
class Choice:
    value: str
    label: str
    picture: Path | None  # None: a plain tile


@dataclass(frozen=True)
class Question:
    label: str
    hint: str
    choices: tuple = ()

    def labels(self):
        return {choice.value: choice.label for choice in self.choices}


@dataclass(frozen=True)
class Survey:
    path: Path
    title: str
    heading: str
    introduction: str
    name: Question
    coat: Question
    donut: Question
    opens_at: datetime | None = None
    closes_at: datetime | None = None
    max_responses: int | None = None


def parse_time(text, fail):
    """An RFC 3339 time with its offset (a TOML offset date-time, or a string)."""
    if isinstance(text, str):
        try:
            text = datetime.fromisoformat(text.strip())
        except ValueError:
            fail(f"{text!r} is not an RFC 3339 time, such as 2026-12-01T09:00:00+01:00")
    if not isinstance(text, datetime):
        fail("must be a date and time, such as 2026-12-01T09:00:00+01:00")
    if text.tzinfo is None:
        fail(f"{text.isoformat()} needs its offset from UTC, such as +01:00 or Z")
    return text.astimezone(timezone.utc)


def parse_count(value, fail):
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            fail(f"{value!r} is not a whole number")
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        fail("must be a whole number, 1 or more")
    return value


class _Reader:
    def __init__(self, path):
        self.path = Path(path)

    def fail(self, key, problem):
        raise SurveyFileError(self.path, key, problem)

    def table(self, data, key, allowed):
        if not isinstance(data, dict):
            self.fail(key, "must be a table")
        for name in data:
            if name not in allowed:
                self.fail(f"{key}.{name}" if key else name,
                          f"unknown key (expected one of {', '.join(sorted(allowed))})")
        return data

    def text(self, data, key, where, limit, required=True):
        full = f"{where}.{key}" if where else key
        if key not in data:
            if required:
                self.fail(full, "missing")
            return ""
        value = data[key]
        if not isinstance(value, str) or not value.strip():
            self.fail(full, "must be some text")
        value = " ".join(value.split())
        if len(value) > limit:
            self.fail(full, f"is {len(value)} characters long, at most {limit}")
        return value

    def question(self, data, key):
        if key not in data:
            self.fail(key, "missing")
        allowed = CHOICE_QUESTION_KEYS if key in CHOICE_QUESTIONS else QUESTION_KEYS
        table = self.table(data[key], key, allowed)
        label = self.text(table, "label", key, LABEL_MAX)
        hint = self.text(table, "hint", key, TEXT_MAX, required=False)
        if key not in CHOICE_QUESTIONS:
            return Question(label, hint)
        return Question(label, hint, self.choices(table, key))

    def choices(self, table, question):
        key = f"{question}.choices"
        items = table.get("choices")
        if not isinstance(items, list):
            self.fail(key, "missing: a list of { value, label } tables")
        if not items:
            self.fail(key, "is empty: give at least one choice")
        seen = set()
        choices = []
        for i, item in enumerate(items):
            where = f"{key}[{i}]"
            self.table(item, where, CHOICE_KEYS)
            value = item.get("value")
            if not isinstance(value, str) or not VALUE.match(value):
                self.fail(f"{where}.value", f"{value!r} is not a value: 1 to 32 of a-z, 0-9, - and _, "
                          "starting with a letter or digit" if value is not None else "missing")
            if value in seen:
                self.fail(f"{where}.value", f"{value!r} is already a choice of {question}")
            seen.add(value)
            choices.append(Choice(value, self.text(item, "label", where, LABEL_MAX),
                                  self.picture(item, where)))
        return tuple(choices)

    def picture(self, item, where):
        if "picture" not in item:
            return None
        name = item["picture"]
        key = f"{where}.picture"
        if not isinstance(name, str) or not name:
            self.fail(key, "must be a file name")
        path = self.path.parent / name
        if path.suffix.lower() not in PICTURE_TYPES:
            self.fail(key, f"{name!r} is not a picture ({', '.join(sorted(PICTURE_TYPES))})")
        if not path.is_file():
            self.fail(key, f"{name!r} is not there ({path})")
        return path.resolve()

    def survey(self):
        try:
            with open(self.path, "rb") as fh:
                data = tomllib.load(fh)
        except OSError as exc:
            self.fail("-", f"cannot be read: {exc.strerror}")
        except tomllib.TOMLDecodeError as exc:
            self.fail("-", f"is not valid TOML: {exc}")
        self.table(data, "", TOP_KEYS)
        title = self.text(data, "title", "", LABEL_MAX)
        survey = Survey(
            path=self.path,
            title=title,
            heading=self.text(data, "heading", "", LABEL_MAX, required=False) or title,
            introduction=self.text(data, "introduction", "", TEXT_MAX, required=False),
            name=self.question(data, "name"),
            coat=self.question(data, "coat"),
            donut=self.question(data, "donut"),
            opens_at=self.optional(data, "opens_at", parse_time),
            closes_at=self.optional(data, "closes_at", parse_time),
            max_responses=self.optional(data, "max_responses", parse_count),
        )
        check_schedule(survey, lambda key, problem: self.fail(key, problem))
        return survey

    def optional(self, data, key, parse):
        if key not in data:
            return None
        return parse(data[key], lambda problem: self.fail(key, problem))


def check_schedule(survey, fail):
    if survey.opens_at and survey.closes_at and survey.closes_at <= survey.opens_at:
        fail("closes_at", f"{survey.closes_at.isoformat()} is not after opens_at ({survey.opens_at.isoformat()})")


def load(path=DEFAULT_FILE):
    """The survey in the file at `path`; SurveyFileError if it is broken."""
    return _Reader(path).survey()


# The environment's overrides: an operator opens, closes or caps the survey
# without editing its file.  An empty value leaves the file's.
OVERRIDES = {"OPENS_AT": ("opens_at", parse_time), "CLOSES_AT": ("closes_at", parse_time),
             "MAX_RESPONSES": ("max_responses", parse_count)}


def from_env(env):
    """SURVEY_FILE's survey, with OPENS_AT, CLOSES_AT and MAX_RESPONSES applied."""
    path = env.get("SURVEY_FILE") or DEFAULT_FILE
    survey = load(path)
    given = {"OPENS_AT": env.get("OPENS_AT", ""), "CLOSES_AT": env.get("CLOSES_AT", ""),
             "MAX_RESPONSES": env.get("MAX_RESPONSES", "")}
    changes = {}
    for variable, text in given.items():
        if text.strip():
            field, parse = OVERRIDES[variable]

            def fail(problem, variable=variable):
                raise SurveyFileError(f"{path} (with {variable} from the environment)", variable, problem)
            changes[field] = parse(text, fail)
    if changes:
        survey = replace(survey, **changes)

        def fail(key, problem):
            raise SurveyFileError(f"{path} (with the environment's overrides)", key, problem)
        check_schedule(survey, fail)
    return survey


def status(survey, accepted, now):
    """'not_open', 'open' or 'closed', at `now` with `accepted` answers taken."""
    if survey.opens_at and now < survey.opens_at:
        return "not_open"
    if survey.closes_at and now >= survey.closes_at:
        return "closed"
    if survey.max_responses is not None and accepted >= survey.max_responses:
        return "closed"
    return "open"

