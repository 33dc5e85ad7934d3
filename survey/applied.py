"""Has the database taken these survey files?

The migration (worker/migrate.py, worker/tables.py) makes each question's
column and records the questions it made in survey_tables.  A service that
does not migrate itself (the web, and the worker with MIGRATE_ON_START=0)
asks this at its start and refuses to run on a file the database has not
taken: an edit the migration refused (a type changed, a table renamed) is
then refused by every service, not only by the migration, and no answer to
a question without a column is accepted, to be dropped on insert."""

REGISTERED = "SELECT table_name, questions FROM survey_tables"


class NotApplied(ValueError):
    """One line naming the file, the question and what to do."""


def check(cur, surveys):
    """NotApplied if a question of `surveys` has no column of its type yet."""
    cur.execute(REGISTERED)
    registered = {table: {q["id"]: q["type"] for q in questions} for table, questions in cur.fetchall()}
    for survey in surveys:
        made = registered.get(survey.table)
        for question in survey.questions:
            if made is None or made.get(question.id) != question.type:
                have = "no table" if made is None else (
                    f"a {made[question.id]} question" if question.id in made else "no column")
                raise NotApplied(
                    f"{survey.path}: {question.id}: the database has {have} for this {question.type} question "
                    f"(table {survey.table}): the migration has not taken this file; run it (compose's migrate, "
                    "the Kubernetes Job, make run's database), and if it refuses the edit, do what it says")
