"""Each survey's table and view, made and kept in step with its file.

Why a table per survey, typed, and a view over it: the auditor and any BI
tool read `select * from cats;` with one column per question, of its type
(text, text[], integer, numeric, date), and PostgreSQL keeps each column to
its type.  A single table of JSON documents is opaque to both.  LimeSurvey
also keeps a table per survey, and its users cannot change a survey once it
is live, because it rebuilds that table; here an edit only ever adds:

- a new question is a new column, NULL for the answers before it
  (ALTER TABLE ADD COLUMN of a nullable column rewrites nothing);
- a removed question keeps its column and its answers, shown after the
  questions still asked, and survey_tables remembers its label and type;
- a choice is a value in a text column: relabelling or removing one touches
  no table;
- an edit that would make stored answers unreadable (a question's type
  changed, a table renamed while it holds answers) is refused at start.

The table lives in the schema `answers`, where only the worker may insert;
the view of the same name in `public` puts the questions in the file's
order and the submission's id and times last, and is what the web and the
auditor may read.  Run by worker/migrate.py, as the owner, in its
transaction and under its lock."""

import json

from psycopg2 import sql

from submission import META_COLUMNS


class SurveyEditError(ValueError):
    """The file's edit would make stored answers unreadable: one line,
    naming the file, the key and what to do instead."""

    def __init__(self, survey, key, problem):
        super().__init__(f"{survey.path}: {key}: {problem}")


# format_type()'s names for the types the question types ask for.
CATALOG_TYPES = {"text": "text", "text[]": "text[]", "integer": "integer", "numeric": "numeric", "date": "date"}

CREATE_TABLE = """
    CREATE TABLE IF NOT EXISTS answers.{table} (
        submission_id  uuid        PRIMARY KEY,
        submitted_at   timestamptz NOT NULL,
        stored_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
        survey_version text
    )
"""
CREATE_INDEX = "CREATE INDEX IF NOT EXISTS {index} ON answers.{table} (stored_at)"
TRIGGERS = """
    CREATE OR REPLACE TRIGGER skip_erased BEFORE INSERT ON answers.{table}
        FOR EACH ROW EXECUTE FUNCTION answers_skip_erased();
    CREATE OR REPLACE TRIGGER read_committed BEFORE INSERT ON answers.{table}
        FOR EACH STATEMENT EXECUTE FUNCTION answers_require_read_committed();
"""
COLUMNS = """
    SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull
    FROM pg_attribute AS a
    WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped
    ORDER BY a.attnum
"""
ANSWER_TABLES = "SELECT relname FROM pg_class WHERE relnamespace = 'answers'::regnamespace AND relkind = 'r' ORDER BY 1"
REGISTERED = "SELECT questions FROM survey_tables WHERE table_name = %s"
OTHER_TABLE = "SELECT table_name FROM survey_tables WHERE slug = %s AND table_name <> %s"
REGISTER = """
    INSERT INTO survey_tables (table_name, slug, version, questions) VALUES (%s, %s, %s, %s)
    ON CONFLICT (table_name) DO UPDATE
        SET slug = EXCLUDED.slug, version = EXCLUDED.version, questions = EXCLUDED.questions, updated_at = now()
"""
GRANTS = """
    REVOKE ALL ON answers.{table} FROM PUBLIC, survey_worker, survey_web, auditor;
    GRANT INSERT ON answers.{table} TO survey_worker;
    -- ON CONFLICT reads the key, RETURNING the two times: never an answer.
    GRANT SELECT (submission_id, submitted_at, stored_at) ON answers.{table} TO survey_worker;
    REVOKE ALL ON public.{table} FROM PUBLIC, survey_worker, survey_web, auditor;
    GRANT SELECT (submission_id) ON public.{table} TO survey_worker;
    GRANT SELECT ON public.{table} TO survey_web, auditor;
"""


def spec(surveys):
    """What this module makes of `surveys`, as text: part of the migration's
    digest, so an edited file is applied and an unchanged one is not."""
    return json.dumps([[s.slug, s.table, [_entry(q) for q in s.questions]] for s in surveys], sort_keys=True,
                      default=str)


def _entry(question, asked=True):
    return {"id": question.id, "type": question.type, "label": question.label, "asked": asked,
            "required": question.required and question.show_if is None,
            "choices": [[c.value, c.label] for c in question.choices]}


def _columns(cur, relation):
    cur.execute(COLUMNS, (relation,))
    return [(name, kind, not_null) for name, kind, not_null in cur.fetchall()]


def _run(cur, template, **names):
    cur.execute(sql.SQL(template).format(**{k: sql.Identifier(v) for k, v in names.items()}))


def grant(cur):
    """Each role's privileges on every survey's table and view (after db/roles.sql)."""
    cur.execute(ANSWER_TABLES)
    for (table,) in cur.fetchall():
        _run(cur, GRANTS, table=table)


def apply(cur, surveys):
    """Make or extend each survey's table, then every survey's view; grant()
    gives the roles theirs."""
    seen = {}
    for survey in surveys:
        if survey.table in seen:
            raise SurveyEditError(survey, "table", f"{survey.table!r} is already the table of {seen[survey.table]}; "
                                  "each survey stores its answers in a table of its own")
        seen[survey.table] = survey.path
        _table(cur, survey)
    cur.execute(ANSWER_TABLES)
    for (table,) in cur.fetchall():
        _view(cur, table)


def _table(cur, survey):
    table = survey.table
    cur.execute(OTHER_TABLE, (survey.slug, table))
    for (old,) in cur.fetchall():
        _run(cur, "SELECT count(*) FROM answers.{table}", table=old)
        held = cur.fetchone()[0]
        if held:
            raise SurveyEditError(survey, "table", f"this survey's {held} answers are in table {old!r}: renamed to "
                                  f"{table!r}, they would be left behind; keep table = \"{old}\", or start a new "
                                  "survey (a new file)")
    _run(cur, CREATE_TABLE, table=table)
    _run(cur, CREATE_INDEX, table=table, index=f"{table[:50]}_stored_at")
    _run(cur, TRIGGERS, table=table)
    existing = {name: (kind, not_null) for name, kind, not_null in _columns(cur, f"answers.{table}")}
    for question in survey.questions:
        want = CATALOG_TYPES[question.kind.column(question)]
        if question.id in existing:
            have, not_null = existing[question.id]
            if have != want:
                raise SurveyEditError(survey, question.id, f"its answers are stored as {have}, a {question.type} "
                                      f"question stores {want}: give the changed question a new id (the old "
                                      "answers stay under the old one)")
            if not_null and not (question.required and question.show_if is None):
                _run(cur, "ALTER TABLE answers.{table} ALTER COLUMN {column} DROP NOT NULL",
                     table=table, column=question.id)
        else:
            cur.execute(sql.SQL("ALTER TABLE answers.{} ADD COLUMN {} " + want).format(
                sql.Identifier(table), sql.Identifier(question.id)))
    cur.execute(REGISTERED, (table,))
    row = cur.fetchone()
    asked = [_entry(q) for q in survey.questions]
    ids = {q["id"] for q in asked}
    retired = [{**q, "asked": False} for q in (row[0] if row else []) if q["id"] not in ids]
    cur.execute(REGISTER, (table, survey.slug, survey.version, json.dumps(asked + retired)))


def _view(cur, table):
    """public.<table>: the questions in the file's order (those no longer
    asked after them), then the submission's id and times."""
    columns = [name for name, _, _ in _columns(cur, f"answers.{table}")]
    cur.execute(REGISTERED, (table,))
    row = cur.fetchone()
    order = [q["id"] for q in row[0]] if row else []
    questions = [c for c in columns if c not in META_COLUMNS]
    questions.sort(key=lambda c: order.index(c) if c in order else len(order) + questions.index(c))
    shown = questions + [c for c in META_COLUMNS if c != "survey_version"]
    # Dropped and made again: a view's columns cannot be reordered in place.
    # Only the view is locked, never the table the worker inserts into.
    _run(cur, "DROP VIEW IF EXISTS public.{table}", table=table)
    cur.execute(sql.SQL("CREATE VIEW public.{} AS SELECT {} FROM answers.{}").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, shown)), sql.Identifier(table)))
