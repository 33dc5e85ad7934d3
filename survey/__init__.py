"""The survey an owner runs, read from a TOML file (SURVEY_FILE).

Both images copy this package: the web builds its form from the file, and the
worker checks it at start, so a broken file stops every service before any
of them serves.  A broken file is refused whole, with one line naming the
file, the key and what is wrong: SurveyFileError's message.

`python -m survey check FILE` checks a file offline."""

import hashlib
import os
import re
import tomllib
from dataclasses import dataclass, replace
from datetime import date, datetime, timezone
from pathlib import Path

from submission import IDENTIFIER, META_COLUMNS

from . import webhooks
from .questions import CHOICE_TYPES, TYPES
from .questions.kinds import Choice, Condition, Question

DEFAULT_FILE = Path(__file__).with_name("cats.toml")

# A value is what the table stores (db/schema.sql allows 1 to 32 characters)
# and what a URL and a CSS class may carry.
VALUE = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}\Z")
# A question id is its table column and its form field, a table a PostgreSQL
# name (submission.IDENTIFIER: no quoting needed anywhere).  Neither may be a
# column every survey's table has, or the form's own field.
# The form's own field, and the keys /results.json has beside the questions' rows (web/results.py).
RESERVED_IDS = {*META_COLUMNS, "csrf_token", "status", "total", "figures"}
# The tables beside the answers (db/schema.sql): no survey may take their names.
RESERVED_TABLES = {"erasures", "schema_applied", "survey_tables"}
LABEL_MAX = 60
TEXT_MAX = 300
PICTURE_TYPES = {".svg": "image/svg+xml", ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
                 ".gif": "image/gif", ".webp": "image/webp"}

TOP_KEYS = {"title", "heading", "introduction", "opens_at", "closes_at", "max_responses", "table", "version",
            "questions", "webhooks", "notify"}
# The file of before [[questions]]: three fixed tables, kept readable so an
# owner's file goes on working; stored in cats, where its answers always were.
LEGACY_QUESTIONS = {"name": "short_text", "coat": "single_choice", "donut": "single_choice"}
LEGACY_TABLE = "cats"
LEGACY_NAME_MAX = 50  # the cats table checks the same limit
QUESTION_KEYS = {"id", "type", "label", "hint", "required", "show_if"}
CONDITION_KEYS = {"question", "equals", "in"}
CHOICE_KEYS = {"value", "label", "picture"}


class SurveyFileError(ValueError):
    """The file cannot be the survey; the message is one line: file, key, problem."""

    def __init__(self, path, key, problem):
        super().__init__(f"{path}: {key}: {problem}")


@dataclass(frozen=True)
class Survey:
    path: Path
    title: str
    heading: str
    introduction: str
    questions: tuple
    table: str
    version: str
    slug: str = ""
    opens_at: datetime | None = None
    closes_at: datetime | None = None
    max_responses: int | None = None
    webhooks: tuple = ()
    notify_email: str | None = None

    def question(self, question_id):
        return next((q for q in self.questions if q.id == question_id), None)

    def __getattr__(self, name):
        # survey.coat: a question by its id, as templates and tests read it.
        for question in self.__dict__.get("questions", ()):
            if question.id == name:
                return question
        raise AttributeError(name)

    def visible(self, answers):
        """The ids of the questions shown, given the answers so far: a
        question whose condition fails is hidden, and so is one whose
        condition rests on a hidden question."""
        shown = set()
        for question in self.questions:
            condition = question.show_if
            if condition is None or (condition.question in shown
                                     and condition.holds(answers.get(condition.question))):
                shown.add(question.id)
        return shown


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
    def __init__(self, path, env):
        self.path = Path(path)
        self.env = env  # where secret_env names a webhook's secret

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

    def integer(self, data, key, where, default=None):
        value = data.get(key, default)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            self.fail(f"{where}.{key}", f"{value!r} is not a whole number")
        return value

    def count(self, data, key, where, default=None, minimum=1, limit=None):
        value = self.integer(data, key, where, default)
        if value is not None and (value < minimum or (limit and value > limit)):
            self.fail(f"{where}.{key}", f"must be {minimum} or more" + (f", at most {limit}" if limit else ""))
        return value

    def flag(self, data, key, where, default):
        value = data.get(key, default)
        if not isinstance(value, bool):
            self.fail(f"{where}.{key}", f"{value!r} is not true or false")
        return value

    def number(self, data, key, where, whole):
        from decimal import Decimal
        value = data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            self.fail(f"{where}.{key}", f"{value!r} is not a number")
        if whole and value != int(value):
            self.fail(f"{where}.{key}", f"{value!r} is not a whole number, and the question takes integers")
        return int(value) if whole else Decimal(str(value))

    def date(self, data, key, where):
        value = data.get(key)
        if value is None:
            return None
        if isinstance(value, str):
            try:
                value = date.fromisoformat(value.strip())
            except ValueError:
                self.fail(f"{where}.{key}", f"{value!r} is not a date, such as 2026-12-01")
        if isinstance(value, datetime) or not isinstance(value, date):
            self.fail(f"{where}.{key}", f"{value!r} is not a date, such as 2026-12-01")
        return value

    def identifier(self, value, key, what, reserved):
        if not isinstance(value, str) or not IDENTIFIER.match(value):
            self.fail(key, f"{value!r} is not {what}: 1 to 63 of a-z, 0-9 and _, starting with a letter"
                      if value is not None else "missing")
        if value in reserved:
            self.fail(key, f"{value!r} is a name this project keeps for itself")
        return value

    def questions(self, data):
        items = data.get("questions")
        if not isinstance(items, list) or not items:
            self.fail("questions", "missing: give at least one [[questions]] table")
        seen = {}
        questions = []
        for i, item in enumerate(items):
            where = f"questions[{i}]"
            if not isinstance(item, dict):
                self.fail(where, "must be a table")
            kind_name = item.get("type")
            if kind_name not in TYPES:
                self.fail(f"{where}.type", f"{kind_name!r} is not a question type (one of {', '.join(TYPES)})"
                          if kind_name is not None else "missing")
            kind = TYPES[kind_name]
            self.table(item, where, QUESTION_KEYS | kind.keys)
            qid = self.identifier(item.get("id"), f"{where}.id", "an id", RESERVED_IDS)
            if qid in seen:
                self.fail(f"{where}.id", f"{qid!r} is already the id of questions[{seen[qid]}]")
            seen[qid] = i
            questions.append(self.question(item, where, kind, qid, questions))
        return tuple(questions)

    def question(self, item, where, kind, qid, earlier):
        choices = self.choices(item, where) if "choices" in kind.keys else ()
        return Question(
            id=qid, type=kind.name, label=self.text(item, "label", where, LABEL_MAX),
            hint=self.text(item, "hint", where, TEXT_MAX, required=False),
            required=self.flag(item, "required", where, True), choices=choices,
            show_if=self.condition(item, where, earlier), rules=kind.read(self, item, where))

    def condition(self, item, where, earlier):
        if "show_if" not in item:
            return None
        key = f"{where}.show_if"
        table = self.table(item["show_if"], key, CONDITION_KEYS)
        target = next((q for q in earlier if q.id == table.get("question")), None)
        if target is None:
            self.fail(f"{key}.question", f"{table.get('question')!r} is not a question asked before this one")
        if target.type not in CHOICE_TYPES:
            self.fail(f"{key}.question", f"{target.id!r} is a {target.type} question; a condition tests a choice")
        if ("equals" in table) == ("in" in table):
            self.fail(key, "give one of equals = \"value\" or in = [\"value\", ...]")
        values = [table["equals"]] if "equals" in table else table["in"]
        if not isinstance(values, list) or not values:
            self.fail(f"{key}.in", "must be a list of choice values")
        for value in values:
            if value not in target.labels():
                self.fail(f"{key}.{'equals' if 'equals' in table else 'in'}",
                          f"{value!r} is not a choice of {target.id!r}")
        return Condition(target.id, tuple(values))

    def legacy_questions(self, data):
        """[name], [coat] and [donut], as the questions they always were."""
        questions = []
        for qid, kind_name in LEGACY_QUESTIONS.items():
            if qid not in data:
                self.fail(qid, "missing")
            allowed = {"label", "hint"} | ({"choices"} if kind_name == "single_choice" else set())
            table = self.table(data[qid], qid, allowed)
            questions.append(Question(
                id=qid, type=kind_name, label=self.text(table, "label", qid, LABEL_MAX),
                hint=self.text(table, "hint", qid, TEXT_MAX, required=False),
                choices=self.choices(table, qid) if kind_name == "single_choice" else (),
                rules={"max_length": LEGACY_NAME_MAX} if kind_name == "short_text" else {}))
        return tuple(questions)

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
            raw = self.path.read_bytes()
            data = tomllib.loads(raw.decode())
        except OSError as exc:
            self.fail("-", f"cannot be read: {exc.strerror}")
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            self.fail("-", f"is not valid TOML: {exc}")
        legacy = "questions" not in data and any(key in data for key in LEGACY_QUESTIONS)
        self.table(data, "", TOP_KEYS | (set(LEGACY_QUESTIONS) if legacy else set()))
        title = self.text(data, "title", "", LABEL_MAX)
        default_table = LEGACY_TABLE if legacy else self.path.stem.lower().replace("-", "_")
        version = data.get("version", hashlib.sha256(raw).hexdigest()[:16])
        if not isinstance(version, (str, int)) or isinstance(version, bool) or not str(version).strip():
            self.fail("version", "must be some text or a number")
        survey = Survey(
            path=self.path,
            title=title,
            heading=self.text(data, "heading", "", LABEL_MAX, required=False) or title,
            introduction=self.text(data, "introduction", "", TEXT_MAX, required=False),
            questions=self.legacy_questions(data) if legacy else self.questions(data),
            table=self.identifier(data.get("table", default_table), "table", "a table name", RESERVED_TABLES),
            version=str(version)[:64],
            slug=self.path.stem,
            opens_at=self.optional(data, "opens_at", parse_time),
            closes_at=self.optional(data, "closes_at", parse_time),
            max_responses=self.optional(data, "max_responses", parse_count),
            webhooks=webhooks.read(data.get("webhooks"), self.fail, self.env, self.path.parent),
            notify_email=webhooks.read_notify(data.get("notify"), self.fail),
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


def load(path=DEFAULT_FILE, env=None):
    """The survey in the file at `path`; SurveyFileError if it is broken.
    Its webhooks' secret_env names a variable of `env` (the process's)."""
    return _Reader(path, os.environ if env is None else env).survey()


# The environment's overrides: an operator opens, closes or caps the survey
# without editing its file.  An empty value leaves the file's.
OVERRIDES = {"OPENS_AT": ("opens_at", parse_time), "CLOSES_AT": ("closes_at", parse_time),
             "MAX_RESPONSES": ("max_responses", parse_count)}


def from_env(env):
    """SURVEY_FILE's survey, with OPENS_AT, CLOSES_AT and MAX_RESPONSES applied."""
    path = env.get("SURVEY_FILE") or DEFAULT_FILE
    survey = load(path, env)
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


# A survey of SURVEYS_DIR is served at /s/SLUG, SLUG its file's name.
SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,62}\Z")


def load_folder(folder, env=None):
    """{slug: survey} of every SLUG.toml in `folder`, sorted by slug; the first
    broken file raises SurveyFileError, as a broken SURVEY_FILE does."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SurveyFileError(folder, "SURVEYS_DIR", "is not a folder")
    surveys = {}
    for path in sorted(folder.glob("*.toml")):
        if not SLUG.match(path.stem):
            raise SurveyFileError(path, "-", f"{path.stem!r} is not a survey's address: name the file SLUG.toml, "
                                  "SLUG 1 to 63 of a-z, 0-9 and -")
        surveys[path.stem] = load(path, env)
    return surveys


def all_from_env(env):
    """The survey at / (from_env) and {slug: survey} of SURVEYS_DIR's
    (empty without one).  Two surveys may not share a table."""
    root = from_env(env)
    folder = load_folder(env["SURVEYS_DIR"], env) if env.get("SURVEYS_DIR") else {}
    tables = {root.table: root.path}
    for slug, survey in folder.items():
        if survey.path.resolve() == root.path.resolve():
            folder[slug] = root  # SURVEY_FILE is in the folder too: one survey at two addresses
            continue
        if survey.table in tables:
            raise SurveyFileError(survey.path, "table", f"{survey.table!r} is already the table of "
                                  f"{tables[survey.table]}; give each survey a table of its own")
        tables[survey.table] = survey.path
    return root, folder


def status(survey, accepted, now):
    """'not_open', 'open' or 'closed', at `now` with `accepted` answers taken."""
    if survey.opens_at and now < survey.opens_at:
        return "not_open"
    if survey.closes_at and now >= survey.closes_at:
        return "closed"
    if survey.max_responses is not None and accepted >= survey.max_responses:
        return "closed"
    return "open"

